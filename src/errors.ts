// Errors are values: a code and a description. They are turned into wire
// bytes in exactly one place per protocol (tcp/protocol.ts, http/render.ts).

export const E_INVALID = "E_INVALID";
export const E_BAD_PROTOCOL = "E_BAD_PROTOCOL";
export const E_BAD_BODY = "E_BAD_BODY";
export const E_BAD_TOPIC = "E_BAD_TOPIC";
export const E_BAD_CHANNEL = "E_BAD_CHANNEL";

export type TcpErrorCode =
  | typeof E_INVALID
  | typeof E_BAD_PROTOCOL
  | typeof E_BAD_BODY
  | typeof E_BAD_TOPIC
  | typeof E_BAD_CHANNEL;

/** A TCP protocol error. Every one is fatal: it is sent, then the connection closes. */
export interface TcpError {
  readonly kind: "tcp-error";
  readonly code: TcpErrorCode;
  /** Empty for E_BAD_PROTOCOL, which the reference sends bare. */
  readonly description: string;
}

export function tcpError(code: TcpErrorCode, description = ""): TcpError {
  return { kind: "tcp-error", code, description };
}

/** The payload of the error frame: `CODE description`. */
export function tcpErrorText(error: TcpError): string {
  return error.description === "" ? error.code : `${error.code} ${error.description}`;
}

export const MISSING_ARG_TOPIC = "MISSING_ARG_TOPIC";
export const INVALID_ARG_TOPIC = "INVALID_ARG_TOPIC";
export const MISSING_ARG_CHANNEL = "MISSING_ARG_CHANNEL";
export const INVALID_ARG_CHANNEL = "INVALID_ARG_CHANNEL";
export const MISSING_ARG_NODE = "MISSING_ARG_NODE";
export const TOPIC_NOT_FOUND = "TOPIC_NOT_FOUND";
export const CHANNEL_NOT_FOUND = "CHANNEL_NOT_FOUND";
export const INVALID_REQUEST = "INVALID_REQUEST";
export const NOT_FOUND = "NOT_FOUND";
export const METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED";
export const PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE";
export const URI_TOO_LONG = "URI_TOO_LONG";
export const INTERNAL_ERROR = "INTERNAL_ERROR";

/** An HTTP API error: the status and the code that goes into `{"message":CODE}`. */
export interface HttpError {
  readonly kind: "http-error";
  readonly status: number;
  readonly code: string;
}

export function httpError(status: number, code: string): HttpError {
  return { kind: "http-error", status, code };
}
