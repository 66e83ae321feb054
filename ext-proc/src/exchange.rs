//! One HTTP request's life in the sidecar: one ext_proc stream, one message per phase the
//! filter config (or a mode override) sends. Today that is the request headers only:
//!
//! 1. read the route and the credential the filter handed over (filter state, unforgeable);
//! 2. authenticate the gateway credential ([`crate::auth`]);
//! 3. add the upstream credential ([`crate::providers`]);
//! 4. Bedrock only: ask for the body (BUFFERED), then sign it ([`crate::providers::bedrock`]).
//!
//! Any failure becomes the gateway's JSON error as an `ImmediateResponse`: nothing is forwarded.

use crate::auth::{self, access, Principal};
use crate::gateway::Gateway;
use crate::providers::bedrock::{self, Pending};
use crate::providers::{self, Upstream};
use aigw_core::handoff::{Route, CREDENTIAL_ATTRIBUTE, ROUTE_ATTRIBUTE};
use aigw_core::{ErrorKind, GatewayError, ProviderKind};
use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request as Phase;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response as Reply;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    BodyResponse, CommonResponse, HeaderMutation, HeadersResponse, HttpBody, HttpHeaders,
    ImmediateResponse, ProcessingRequest, ProcessingResponse, TrailersResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct};

/// Key of the attributes Envoy sends for the ext_proc filter.
const EXT_PROC_ATTRIBUTES: &str = "envoy.filters.http.ext_proc";

/// Per-request state, kept across the phases of one stream.
#[derive(Debug, Default)]
pub struct Exchange {
    pub principal: Option<std::sync::Arc<Principal>>,
    /// Bedrock: the request waiting for its body to be signed, and its provider.
    signing: Option<(String, Pending)>,
}

impl Exchange {
    pub async fn on_message(&mut self, gw: &Gateway, msg: ProcessingRequest) -> ProcessingResponse {
        let result = match msg.request {
            Some(Phase::RequestHeaders(h)) => {
                self.on_request_headers(gw, &msg.attributes, &h).await
            }
            Some(Phase::RequestBody(b)) => self.on_request_body(gw, &b).await,
            // Phases we did not ask for: let them pass unchanged.
            Some(Phase::ResponseHeaders(_)) => {
                Ok(reply(Reply::ResponseHeaders(HeadersResponse::default())))
            }
            Some(Phase::ResponseBody(_)) => Ok(reply(Reply::ResponseBody(BodyResponse::default()))),
            Some(Phase::RequestTrailers(_)) => {
                Ok(reply(Reply::RequestTrailers(TrailersResponse::default())))
            }
            Some(Phase::ResponseTrailers(_)) => {
                Ok(reply(Reply::ResponseTrailers(TrailersResponse::default())))
            }
            None => Err(GatewayError::new(
                ErrorKind::Misconfigured,
                "empty ext_proc message",
            )),
        };
        result.unwrap_or_else(|e| reply(immediate(&e)))
    }

    async fn on_request_headers(
        &mut self,
        gw: &Gateway,
        attributes: &std::collections::HashMap<String, Struct>,
        headers: &HttpHeaders,
    ) -> Result<ProcessingResponse, GatewayError> {
        let attrs = attributes.get(EXT_PROC_ATTRIBUTES);
        let route = attribute(attrs, ROUTE_ATTRIBUTE)
            .and_then(Route::decode)
            .ok_or_else(|| {
                // Only reachable if Envoy routes a request here that the filter did not route.
                tracing::error!("request without a filter route reached the sidecar; check the filter order in the Envoy config");
                GatewayError::new(ErrorKind::Misconfigured, "the gateway is misconfigured")
            })?;
        let credential = attribute(attrs, CREDENTIAL_ATTRIBUTE).unwrap_or("");
        let principal = auth::authenticate(gw, &route, credential).await?;
        let provider = gw.config.provider(route.provider).ok_or_else(|| {
            tracing::error!(
                provider = route.provider,
                "provider unknown to the sidecar; restart it with the current config"
            );
            GatewayError::new(ErrorKind::Misconfigured, "the gateway is misconfigured")
        })?;
        let rules = provider
            .access
            .as_deref()
            .or(gw.config.default_access.as_deref());
        if !access::permits(rules, &principal) {
            return Err(GatewayError::new(
                ErrorKind::AccessDenied,
                format!("access to provider '{}' is not permitted", route.provider),
            ));
        }
        self.principal = Some(principal);

        if route.kind == ProviderKind::Bedrock {
            return self.start_signing(gw, &route, headers).await;
        }
        let up = Upstream {
            route: &route,
            headers: headers.headers.as_ref(),
        };
        let mutation = providers::upstream_mutation(&up, &gw.secrets.snapshot())?;
        Ok(reply(headers_reply(mutation.0)))
    }

    /// Bedrock: sign now if there is no body, else ask Envoy for the whole body first.
    async fn start_signing(
        &mut self,
        gw: &Gateway,
        route: &Route<'_>,
        headers: &HttpHeaders,
    ) -> Result<ProcessingResponse, GatewayError> {
        let signer = signer(gw, route.provider)?;
        let h = headers.headers.as_ref();
        let pending = Pending {
            method: header(h, ":method").unwrap_or("POST").to_string(),
            authority: header(h, ":authority").unwrap_or_default().to_string(),
            path: header(h, ":path").unwrap_or("/").to_string(),
        };
        if headers.end_of_stream {
            let m = signer.sign(&pending, b"", &gw.secrets.snapshot()).await?;
            return Ok(reply(headers_reply(m.0)));
        }
        self.signing = Some((route.provider.to_string(), pending));
        Ok(ProcessingResponse {
            response: Some(headers_reply(HeaderMutation::default())),
            mode_override: Some(bedrock::body_mode()),
            ..Default::default()
        })
    }

    async fn on_request_body(
        &mut self,
        gw: &Gateway,
        body: &HttpBody,
    ) -> Result<ProcessingResponse, GatewayError> {
        let Some((provider, pending)) = self.signing.take() else {
            return Ok(reply(Reply::RequestBody(BodyResponse::default())));
        };
        if !body.end_of_stream {
            // BUFFERED hands over the whole body in one message; anything else is a config error.
            tracing::error!(
                "Bedrock body arrived in pieces; the request body mode must be BUFFERED"
            );
            return Err(GatewayError::new(
                ErrorKind::Misconfigured,
                "the gateway is misconfigured",
            ));
        }
        let m = signer(gw, &provider)?
            .sign(&pending, &body.body, &gw.secrets.snapshot())
            .await?;
        Ok(reply(Reply::RequestBody(BodyResponse {
            response: Some(CommonResponse {
                header_mutation: Some(m.0),
                ..Default::default()
            }),
        })))
    }
}

fn signer<'a>(gw: &'a Gateway, provider: &str) -> Result<&'a bedrock::BedrockSigner, GatewayError> {
    gw.bedrock.get(provider).ok_or_else(|| {
        tracing::error!(
            provider,
            "Bedrock provider unknown to the sidecar; restart it with the current config"
        );
        GatewayError::new(ErrorKind::Misconfigured, "the gateway is misconfigured")
    })
}

fn reply(r: Reply) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(r),
        ..Default::default()
    }
}

fn headers_reply(mutation: HeaderMutation) -> Reply {
    Reply::RequestHeaders(HeadersResponse {
        response: Some(CommonResponse {
            header_mutation: Some(mutation),
            ..Default::default()
        }),
    })
}

/// A request header as Envoy sent it (`raw_value`).
fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    let v = h?.headers.iter().find(|v| v.key == name)?;
    std::str::from_utf8(&v.raw_value)
        .ok()
        .filter(|s| !s.is_empty())
        .or(Some(v.value.as_str()))
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
    let mut headers = providers::Mutation::default();
    headers.set("content-type", b"application/json".to_vec());
    for (k, v) in e.extra_headers() {
        headers.set(k, v.as_bytes().to_vec());
    }
    Reply::ImmediateResponse(ImmediateResponse {
        status: Some(HttpStatus {
            code: i32::from(e.status()),
        }),
        headers: Some(headers.0),
        body: e.to_json().into_bytes(),
        grpc_status: None,
        details: format!("aigw_{}", e.kind.code()),
    })
}
