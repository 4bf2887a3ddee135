//! `GET /v1/stream`: the caller's tenant's findings and incidents as Server-Sent Events.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::state::AppState;
use antibody_store::Role;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;

pub async fn stream(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    auth.require(Role::Analyst, "read the live stream")?;
    let rx = st.pipeline.stream.subscribe();
    let tenant = auth.0.tenant;
    let stop = st.shutdown.clone();
    let events = stream::unfold(
        (rx, tenant, stop),
        |(mut rx, tenant, mut stop)| async move {
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = stop.wait_for(|s| *s) => return None,
                };
                match next {
                    Ok(item) if item.tenant == tenant => {
                        let ev = Event::default().event(item.event).data(&*item.data);
                        return Some((Ok(ev), (rx, tenant, stop)));
                    }
                    Ok(_) => continue,
                    // A slow client missed items: say so rather than silently skipping (no count:
                    // the channel is shared, and its count would leak other tenants' volume).
                    Err(RecvError::Lagged(_)) => {
                        let ev = Event::default().event("lagged").data("{}");
                        return Some((Ok(ev), (rx, tenant, stop)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
