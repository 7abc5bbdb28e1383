// Topic and channel names, as nsqd and nsqlookupd accept them.

const NAME_PATTERN = /^[.a-zA-Z0-9_-]+(#ephemeral)?$/;
const MAX_NAME_LENGTH = 64;

export function isValidName(name: string): boolean {
  return name.length >= 1 && name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export const isValidTopicName = isValidName;
export const isValidChannelName = isValidName;
