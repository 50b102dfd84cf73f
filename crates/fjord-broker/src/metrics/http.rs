//! The `GET /metrics` endpoint, served with axum on its own listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use super::exposition;
use crate::{Broker, BrokerError};

/// Binds `address`, logs `metrics on http://HOST:PORT/metrics`, and serves scrapes until
/// shutdown. `alive` is held until the server has stopped.
pub(crate) async fn start(
    broker: Arc<Broker>,
    address: SocketAddr,
    mut stop: broadcast::Receiver<()>,
    alive: mpsc::Sender<()>,
) -> Result<SocketAddr, BrokerError> {
    let bind_error = |source| BrokerError::Bind { address, source };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    tracing::info!("metrics on http://{local}/metrics");
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(broker);
    tokio::spawn(async move {
        let _alive = alive;
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.recv().await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(local)
}

async fn scrape(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    let snapshot = super::collect(&broker).await;
    (
        [(CONTENT_TYPE, exposition::CONTENT_TYPE)],
        exposition::render(&snapshot),
    )
}
