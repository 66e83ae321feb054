//! The ext_proc gRPC service: one bidirectional stream per HTTP request. Each inbound
//! message is answered in order by that request's [`Exchange`]; no task is spawned per
//! request and nothing is shared between requests but the read-only [`Gateway`].

use crate::exchange::Exchange;
use crate::gateway::Gateway;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessor;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

pub struct Processor {
    gateway: Arc<Gateway>,
}

impl Processor {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
}

struct StreamState {
    inbound: Streaming<ProcessingRequest>,
    exchange: Exchange,
    done: bool,
}

#[tonic::async_trait]
impl ExternalProcessor for Processor {
    type ProcessStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let state = StreamState {
            inbound: request.into_inner(),
            exchange: Exchange::new(Arc::clone(&self.gateway)),
            done: false,
        };
        let out = futures_util::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            match st.inbound.message().await {
                Ok(Some(msg)) => {
                    let resp = st.exchange.on_message(msg).await;
                    Some((Ok(resp), st))
                }
                Ok(None) => None,
                // Propagate, never end with OK: Envoy treats an OK end as "processing done"
                // and would forward the request unprocessed.
                Err(status) => {
                    st.done = true;
                    Some((Err(status), st))
                }
            }
        });
        Ok(Response::new(Box::pin(out)))
    }
}
