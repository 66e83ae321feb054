//! The legacy HTTP+SSE transport (MCP 2024-11-05) as an rmcp client transport, which rmcp
//! 3.x no longer ships: `GET <url>` opens the event stream, whose `endpoint` event names
//! the URL to POST JSON-RPC messages to; the answers come back as `message` events.

use futures_util::StreamExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleClient;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid URL {0}: {1}")]
    BadUrl(String, String),
    #[error("POST answered HTTP {0}")]
    Status(u16),
    #[error("GET answered HTTP {0}")]
    StreamStatus(u16),
    #[error("the event stream ended before naming its endpoint")]
    NoEndpoint,
    #[error("no endpoint event within {0:?}")]
    EndpointTimeout(Duration),
}

pub struct SseTransport {
    http: reqwest::Client,
    post_url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    rx: mpsc::Receiver<ServerJsonRpcMessage>,
    stop: CancellationToken,
}

impl SseTransport {
    /// Opens the event stream and waits (at most `timeout`) for its endpoint. `headers` go
    /// on the GET and every POST. `http` must have no total timeout: the GET lives on.
    pub async fn connect(
        http: reqwest::Client,
        url: &str,
        headers: reqwest::header::HeaderMap,
        timeout: Duration,
    ) -> Result<Self, SseError> {
        let url =
            reqwest::Url::parse(url).map_err(|e| SseError::BadUrl(url.into(), e.to_string()))?;
        let get = http
            .get(url.clone())
            .headers(headers.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send();
        let resp = tokio::time::timeout(timeout, get)
            .await
            .map_err(|_| SseError::EndpointTimeout(timeout))??;
        if !resp.status().is_success() {
            return Err(SseError::StreamStatus(resp.status().as_u16()));
        }
        let (tx, rx) = mpsc::channel(64);
        let (endpoint_tx, endpoint_rx) = oneshot::channel::<String>();
        let stop = CancellationToken::new();
        let reader_stop = stop.clone();
        tokio::spawn(async move {
            let mut events = sse_stream::SseStream::from_bytes_stream(resp.bytes_stream());
            let mut endpoint_tx = Some(endpoint_tx);
            loop {
                let event = tokio::select! {
                    _ = reader_stop.cancelled() => break,
                    e = events.next() => e,
                };
                let Some(Ok(event)) = event else { break };
                match event.event.as_deref() {
                    Some("endpoint") => {
                        if let (Some(t), Some(data)) = (endpoint_tx.take(), event.data) {
                            let _ = t.send(data.trim().to_string());
                        }
                    }
                    None | Some("message") => {
                        let Some(data) = event.data.filter(|d| !d.trim().is_empty()) else {
                            continue;
                        };
                        match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                            Ok(m) => {
                                if tx.send(m).await.is_err() {
                                    break; // the session is gone
                                }
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "undecodable SSE message dropped")
                            }
                        }
                    }
                    Some(_) => {}
                }
            }
            // Dropping `tx` closes the transport for rmcp.
        });
        let endpoint = match tokio::time::timeout(timeout, endpoint_rx).await {
            Ok(Ok(e)) => e,
            Ok(Err(_)) => return Err(SseError::NoEndpoint),
            Err(_) => {
                stop.cancel();
                return Err(SseError::EndpointTimeout(timeout));
            }
        };
        // Relative (`/messages/?session_id=…`) or absolute.
        let post_url = url
            .join(&endpoint)
            .map_err(|e| SseError::BadUrl(endpoint.clone(), e.to_string()))?;
        Ok(Self {
            http,
            post_url,
            headers,
            rx,
            stop,
        })
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let (http, url, headers) = (
            self.http.clone(),
            self.post_url.clone(),
            self.headers.clone(),
        );
        async move {
            let resp = http
                .post(url)
                .headers(headers)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&item)?)
                .send()
                .await?;
            // 202 Accepted (or 200): the answer comes on the event stream.
            if !resp.status().is_success() {
                return Err(SseError::Status(resp.status().as_u16()));
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        self.rx.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.stop.cancel();
        Ok(())
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
