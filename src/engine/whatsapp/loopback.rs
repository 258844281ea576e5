//! Test builds only (`fake-engine`): send the real client to a WhatsApp stand-in on this machine.
//!
//! `WHATSAPP_MCP_FAKE_WA_SERVER=127.0.0.1:PORT` makes the client open its chat socket as plain
//! `ws://127.0.0.1:PORT/ws/chat` and fetch what it would fetch from web.whatsapp.com (the
//! current version string) from `http://127.0.0.1:PORT/` instead. Release builds do not have
//! this module, so nothing in their environment can redirect a linked account.

use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse, UreqHttpClient};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;

/// The variable naming the stand-in's address.
const ENV: &str = "WHATSAPP_MCP_FAKE_WA_SERVER";
/// What the client asks web.whatsapp.com for; everything else is refused while redirected.
const WEB_ORIGIN: &str = "https://web.whatsapp.com/";

/// The stand-in's `host:port`, when one is configured.
pub(super) fn server() -> Option<String> {
    std::env::var(ENV).ok().filter(|v| !v.trim().is_empty())
}

/// The chat socket, on the stand-in.
pub(super) fn transport(server: &str) -> TokioWebSocketTransportFactory {
    TokioWebSocketTransportFactory::new().with_url(format!("ws://{server}/ws/chat"))
}

/// HTTP for the client: web.whatsapp.com requests go to the stand-in, the rest nowhere, so a
/// redirected test process never talks to the real service.
#[derive(Debug)]
pub(super) struct LoopbackHttp {
    server: String,
    inner: UreqHttpClient,
}

impl LoopbackHttp {
    pub(super) fn new(server: &str) -> Self {
        Self {
            server: server.to_owned(),
            inner: UreqHttpClient::new(),
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for LoopbackHttp {
    async fn execute(
        &self,
        mut request: HttpRequest,
    ) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        let Some(path) = request.url.strip_prefix(WEB_ORIGIN) else {
            whatsapp_rust::anyhow::bail!("not reachable from a test build pointed at a stand-in");
        };
        request.url = format!("http://{}/{path}", self.server);
        self.inner.execute(request).await
    }
}
