//! The first and last phases: a request's arrival (its id, kept from `x-request-id` when the
//! client sent one usable id; its access record; the in-flight gauge) and its answer (problems
//! turned into `application/problem+json` or the spec's `gateway_responses`, `x-request-id`
//! set, and the body wrapped so the access-log line and the metrics are written when it ends).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use http::header;

use crate::observe::{request_id, AccessRecord, GatewayRef, LoggedBody, Trace};
use crate::trace::{parse_traceparent, traceparent, SpanContext, TRACEPARENT};

/// Header names made once, not parsed per request.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// One request, from its arrival to its answer.
///
/// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
/// keeps each argument twice in its future (as passed, and as the body's own binding, copied at
/// the first poll), and the request is 240 bytes.
#[allow(clippy::manual_async_fn)]
pub(crate) fn handle_request(
    gw: GatewayRef<'_>,
    peer: SocketAddr,
    mut req: Request,
) -> impl std::future::Future<Output = Response<LoggedBody<'_>>> {
    async move {
        let start = Instant::now();
        gw.metrics.start();
        // The id travels upstream in the request's own header: made once, reused as is.
        let (id_value, keep) = request_id(req.headers());
        if !keep {
            req.headers_mut().insert(X_REQUEST_ID, id_value.clone());
        }
        let client = gw.client_address(peer.ip(), req.headers());
        let trace = trace_context(&mut req);
        // The target as received, for the access log; routing reads its path from here too, as
        // the request itself moves on to the integration.
        let uri = req.uri().clone();
        // Boxed once, here: the answer that carries it is moved several times on its way out.
        let mut record = Box::new(AccessRecord {
            request_id: id_value.clone(),
            ip: client,
            method: req.method().clone(),
            route_key: "-",
            route: "-",
            uri: http::Uri::default(),
            protocol: match req.version() {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            user_agent: req.headers().get(header::USER_AGENT).cloned(),
            start,
            integration_latency: None,
            trace,
            status: 0,
        });
        // `request_id` admits printable ASCII only, so the id is always text.
        let id = id_value.to_str().unwrap_or("-");
        // A gRPC call (HTTP/2 only) gets the gateway's own refusals as gRPC statuses.
        let grpc = req.version() == http::Version::HTTP_2 && is_grpc(req.headers());
        // Pinned where it is made, so that awaiting it copies it no further.
        let dispatched = {
            let routed = std::pin::pin!(super::dispatch(&gw, req, &uri, peer, id, &mut record));
            routed.await
        };
        let mut resp = match dispatched {
            Ok(r) => r,
            Err(p) if grpc => p.into_grpc_response(),
            Err(p) => p.into_custom_response(id, gw.responses),
        };
        record.uri = uri;
        resp.headers_mut().insert(X_REQUEST_ID, id_value.clone());
        if let Some(hsts) = &gw.hsts {
            resp.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        record.status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        Response::from_parts(parts, LoggedBody::new(body, record, gw))
    }
}

/// Whether the request is a gRPC call: `Content-Type: application/grpc`, alone or with a
/// `+format` or parameters.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= 16
            && v[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(v.get(16), None | Some(b'+' | b';'))
    })
}

/// The request's place in a trace (see [`crate::trace`]). Without an exporter: the client's
/// valid `traceparent`, if any, for the access log; the header goes upstream unchanged. With one:
/// a new span of the gateway's, a child of the client's (or the root of a new trace), and the
/// upstream's `traceparent` names it. Several `traceparent` fields are invalid, as one that does
/// not parse is: the gateway then starts a new trace.
fn trace_context(req: &mut Request) -> Option<Trace> {
    let mut fields = req.headers().get_all(TRACEPARENT).iter();
    let incoming = match (fields.next(), fields.next()) {
        (Some(v), None) => parse_traceparent(v.as_bytes()),
        _ => None,
    };
    if !crate::trace::exporting() {
        return incoming.map(|ctx| Trace {
            ctx,
            parent: None,
            exported: false,
        });
    }
    let (new_trace, span_id) = crate::trace::new_ids();
    let ctx = SpanContext {
        trace_id: incoming.map_or(new_trace, |c| c.trace_id),
        span_id,
        sampled: incoming.is_none_or(|c| c.sampled),
    };
    req.headers_mut().insert(TRACEPARENT, traceparent(&ctx));
    Some(Trace {
        ctx,
        parent: incoming.map(|c| c.span_id),
        exported: ctx.sampled,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::gateway::{Gateway, Limits};
    use crate::observe::GatewayRef;
    use crate::router::Lookup;

    /// The reference counts a request could change: the gateway's, its metrics', its stage
    /// name's.
    fn counts(gw: &Arc<Gateway>) -> (usize, usize, usize) {
        (
            Arc::strong_count(gw),
            Arc::strong_count(&gw.metrics),
            Arc::strong_count(&gw.stage),
        )
    }

    #[test]
    fn a_borrowing_request_changes_no_reference_count() {
        let stage = crate::stage::Stage::new("dev", &[]);
        let gw = Arc::new(Gateway::new(
            &stage,
            Vec::new(),
            |_, _, _| Lookup::NotFound,
            Limits::default(),
        ));
        let before = counts(&gw);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let peer: std::net::SocketAddr = "127.0.0.1:9".parse().expect("an address");
        let req = || {
            http::Request::get("/nowhere")
                .header(http::header::HOST, "gw.test")
                .body(axum::body::Body::empty())
                .expect("a request")
        };
        // Borrowed, as the HTTP/1.1 server does: nothing counted while the answer is out, nor
        // after its body (and access log line) is done.
        let answer = rt.block_on(super::handle_request(
            GatewayRef::Borrowed(&gw),
            peer,
            req(),
        ));
        assert_eq!(answer.status(), http::StatusCode::NOT_FOUND);
        assert_eq!(counts(&gw), before);
        drop(answer);
        assert_eq!(counts(&gw), before);
        // Owned, as hyper's servers do: one reference to the gateway while the answer is out.
        let answer = rt.block_on(super::handle_request(
            GatewayRef::Owned(gw.clone()),
            peer,
            req(),
        ));
        assert_eq!(counts(&gw), (before.0 + 1, before.1, before.2));
        drop(answer);
        assert_eq!(counts(&gw), before);
    }

    #[test]
    fn grpc_calls_are_told_by_their_media_type() {
        let is = |ct: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            super::is_grpc(&h)
        };
        assert!(is("application/grpc"));
        assert!(is("application/grpc+proto"));
        assert!(is("Application/GRPC;charset=utf-8"));
        assert!(!is("application/grpc-web"));
        assert!(!is("application/grpcx"));
        assert!(!is("application/json"));
        assert!(!super::is_grpc(&http::HeaderMap::new()));
    }
}
