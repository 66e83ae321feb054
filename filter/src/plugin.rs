//! The proxy-wasm contexts: the root context parses the plugin configuration once; each HTTP
//! context applies [`Request::route`] to its request.

use crate::reply;
use crate::request::{Decision, Request};
use crate::table::ProviderTable;
use aigw_core::handoff::{CREDENTIAL_PROPERTY, ROUTE_PROPERTY, UPSTREAM_SCHEME_HEADER};
use log::{debug, error, info};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    table: Rc<ProviderTable>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            error!("aigw: no plugin configuration");
            return false;
        };
        let Ok(json) = std::str::from_utf8(&bytes) else {
            error!("aigw: plugin configuration is not UTF-8");
            return false;
        };
        match ProviderTable::from_json(json) {
            Ok(t) => {
                info!("aigw: {} provider(s) configured", t.len());
                self.table = Rc::new(t);
                true
            }
            Err(e) => {
                error!("aigw: invalid plugin configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Exchange {
            table: Rc::clone(&self.table),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Exchange {
    table: Rc<ProviderTable>,
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // One hostcall for the whole map: we need :path, every credential header, and to
        // see that no internal header came from the client.
        let headers = self.get_http_request_headers();
        let table = Rc::clone(&self.table);
        match Request::route(&table, &headers) {
            Decision::Pass => Action::Continue,
            Decision::Reply(e) => {
                debug!("aigw: refused: {}", e.kind.code());
                reply::send(self, &e);
                Action::Pause
            }
            Decision::Forward(f) => {
                let p = &f.provider.config;
                for h in f.removed_headers() {
                    self.set_http_request_header(h, None);
                }
                self.set_http_request_header(":path", Some(&f.path));
                self.set_http_request_header(":authority", Some(&p.upstream.authority));
                self.set_http_request_header(
                    UPSTREAM_SCHEME_HEADER,
                    Some(p.upstream.scheme.as_str()),
                );
                self.set_property(vec![ROUTE_PROPERTY], Some(f.provider.route_line.as_bytes()));
                self.set_property(vec![CREDENTIAL_PROPERTY], Some(f.credential.as_bytes()));
                // Header changes clear the route cache on this ABI; say so explicitly anyway,
                // since Envoy ties the automatic clear to the ABI version.
                let _ = proxy_wasm::hostcalls::call_foreign_function("clear_route_cache", None);
                Action::Continue
            }
        }
    }
}
