// The ext_proc processing modes kvroute's gateways ask Envoy for, shared by the standalone gateway's
// config (src/gateway/envoy-config.ts) and the operator's Istio EnvoyFilter
// (src/controllers/pool/envoy-filter.ts), so both fail open the same way.

/**
 * GIE's processing mode: headers, bodies streamed both ways as they arrive (the pick waits only for the
 * request body; responses stream through as they are generated), and trailers, which Envoy requires
 * with FULL_DUPLEX_STREAMED because the end of a stream may arrive in them.
 */
export function duplexProcessingMode(): Record<string, string> {
  return {
    request_header_mode: 'SEND',
    response_header_mode: 'SEND',
    request_body_mode: 'FULL_DUPLEX_STREAMED',
    response_body_mode: 'FULL_DUPLEX_STREAMED',
    request_trailer_mode: 'SEND',
    response_trailer_mode: 'SEND',
  };
}

/**
 * The processing mode under FailOpen. Envoy 1.40 refuses to fail open once a FULL_DUPLEX_STREAMED body
 * chunk has gone to the processor, in either direction (Filter::failureModeAllow): the chunk left
 * Envoy's buffers, so a request on a router that dies mid-body gets 500 whatever failure_mode_allow
 * says. A BUFFERED request body stays in Envoy until the router answers it, and a STREAMED response
 * chunk stays queued until the router answers it, so a stream that fails at any point lets the request
 * (or the response) through unchanged. The router still sees the whole request body, in one message,
 * and picks on it as before (it reads the mode from protocol_config); it picks only after the whole
 * body anyway, so buffering costs no routing latency. Responses still stream chunk by chunk, each
 * waiting for the router's (immediate) answer.
 */
export function failOpenProcessingMode(): Record<string, string> {
  return {
    request_header_mode: 'SEND',
    response_header_mode: 'SEND',
    request_body_mode: 'BUFFERED',
    response_body_mode: 'STREAMED',
    request_trailer_mode: 'SEND',
    response_trailer_mode: 'SEND',
  };
}
