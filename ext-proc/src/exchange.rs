//! One HTTP request's life in the sidecar: one ext_proc stream, one message per phase the
//! filter config (or a mode override) sends. Today that is the request headers only:
//!
//! 1. read the route and the credential the filter handed over (filter state, unforgeable);
//! 2. authenticate the gateway credential ([`crate::auth`]);
//! 3. add the upstream credential ([`crate::providers`]).
//!
//! Any failure becomes the gateway's JSON error as an `ImmediateResponse`: nothing is forwarded.

use crate::auth::Principal;
use crate::gateway::Gateway;
use crate::providers::{self, Upstream};
use aigw_core::handoff::{Route, CREDENTIAL_ATTRIBUTE, ROUTE_ATTRIBUTE};
use aigw_core::{ErrorKind, GatewayError};
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request as Phase;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response as Reply;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, HttpHeaders, ImmediateResponse,
    ProcessingRequest, ProcessingResponse, TrailersResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct};

/// Key of the attributes Envoy sends for the ext_proc filter.
const EXT_PROC_ATTRIBUTES: &str = "envoy.filters.http.ext_proc";

/// Per-request state, kept across the phases of one stream.
#[derive(Debug, Default)]
pub struct Exchange {
    pub principal: Option<Principal>,
}

impl Exchange {
    pub fn on_message(&mut self, gw: &Gateway, msg: ProcessingRequest) -> ProcessingResponse {
        let reply = match msg.request {
            Some(Phase::RequestHeaders(h)) => {
                match self.on_request_headers(gw, &msg.attributes, &h) {
                    Ok(r) => r,
                    Err(e) => immediate(&e),
                }
            }
            // Phases we did not ask for: let them pass unchanged.
            Some(Phase::ResponseHeaders(_)) => Reply::ResponseHeaders(HeadersResponse::default()),
            Some(Phase::RequestBody(_)) => Reply::RequestBody(BodyResponse::default()),
            Some(Phase::ResponseBody(_)) => Reply::ResponseBody(BodyResponse::default()),
            Some(Phase::RequestTrailers(_)) => Reply::RequestTrailers(TrailersResponse::default()),
            Some(Phase::ResponseTrailers(_)) => Reply::ResponseTrailers(TrailersResponse::default()),
            None => immediate(&GatewayError::new(ErrorKind::Misconfigured, "empty ext_proc message")),
        };
        ProcessingResponse {
            response: Some(reply),
            ..Default::default()
        }
    }

    fn on_request_headers(
        &mut self,
        gw: &Gateway,
        attributes: &std::collections::HashMap<String, Struct>,
        headers: &HttpHeaders,
    ) -> Result<Reply, GatewayError> {
        let attrs = attributes.get(EXT_PROC_ATTRIBUTES);
        let route = attribute(attrs, ROUTE_ATTRIBUTE)
            .and_then(Route::decode)
            .ok_or_else(|| {
                // Only reachable if Envoy routes a request here that the filter did not route.
                tracing::error!("request without a filter route reached the sidecar; check the filter order in the Envoy config");
                GatewayError::new(ErrorKind::Misconfigured, "the gateway is misconfigured")
            })?;
        let credential = attribute(attrs, CREDENTIAL_ATTRIBUTE).unwrap_or("");
        let keys = gw.api_keys.load();
        let principal = keys.authenticate(credential).ok_or_else(|| {
            GatewayError::new(ErrorKind::InvalidCredential, "the gateway credential is not valid")
        })?;
        self.principal = Some(principal.clone());

        let up = Upstream {
            route: &route,
            headers: headers.headers.as_ref(),
        };
        let mutation = providers::upstream_mutation(&up, &gw.secrets.snapshot())?;
        Ok(Reply::RequestHeaders(HeadersResponse {
            response: Some(CommonResponse {
                header_mutation: Some(mutation.0),
                ..Default::default()
            }),
        }))
    }
}

/// A string attribute of the ext_proc attribute struct.
fn attribute<'a>(attrs: Option<&'a Struct>, key: &str) -> Option<&'a str> {
    match attrs?.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The gateway's JSON error as an ext_proc immediate response.
pub fn immediate(e: &GatewayError) -> Reply {
    let mut set_headers = vec![header("content-type", "application/json")];
    set_headers.extend(e.extra_headers().iter().map(|(k, v)| header(k, v)));
    Reply::ImmediateResponse(ImmediateResponse {
        status: Some(HttpStatus {
            code: i32::from(e.status()),
        }),
        headers: Some(HeaderMutation {
            set_headers,
            ..Default::default()
        }),
        body: e.to_json().into_bytes(),
        grpc_status: None,
        details: format!("aigw_{}", e.kind.code()),
    })
}

fn header(k: &str, v: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: k.to_string(),
            value: String::new(),
            raw_value: v.as_bytes().to_vec(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}
