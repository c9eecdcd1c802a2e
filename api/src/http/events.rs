//! The live event stream (server-sent events): every event committed by this server — commands
//! and timers alike — as it is committed. The store wrapper (`metrics::MeteredStore`) feeds a
//! tokio broadcast channel after each commit; each client reads its own receiver. A client too
//! slow for the channel gets a `lagged` event with the number it missed (the history has them
//! all). Streams end when the server shuts down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::metrics::Metrics;

use super::auth::Caller;
use super::extract::AppQuery;
use super::history::EventView;
use super::problem::{ApiError, Problem};
use super::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only the events of this instance.
    pub instance: Option<String>,
}

/// Counts a connected client while it lives.
struct Client(Arc<Metrics>);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.add("civicflow_sse_clients", &[], -1.0);
    }
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "Server-sent events: `event` is the event kind, `id` is `<instance>/<seq>`, `data` the event as JSON", content_type = "text/event-stream", body = EventView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn stream_events(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppQuery(q): AppQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Issue 9.3: streams are capped per principal and in all; the permit closes with the stream.
    let permit = state.limiter.open_stream(&principal.name)?;
    let receiver = state.committed.subscribe();
    let shutdown = state.shutdown.clone();
    state.metrics.add("civicflow_sse_clients", &[], 1.0);
    let client = Client(state.metrics.clone());
    let only = q.instance;
    // R6.2: each event's personal values are redacted for this subscriber unless it is of a
    // bound office or oversight; the decision is taken once per instance (bindings are set at
    // start) and kept for the stream's life.
    let app = state.clone();
    let seen: HashMap<String, Option<Arc<civicflow_engine::core::Program>>> = HashMap::new();
    let events = stream::unfold(
        (receiver, shutdown, (client, permit), seen),
        move |(mut receiver, mut shutdown, client, mut seen)| {
            let only = only.clone();
            let app = app.clone();
            let principal = principal.clone();
            async move {
                loop {
                    if *shutdown.borrow() {
                        return None;
                    }
                    let next = tokio::select! {
                        _ = shutdown.changed() => return None,
                        next = receiver.recv() => next,
                    };
                    let event = match next {
                        Ok(e) if only.as_ref().is_none_or(|i| *i == e.instance) => {
                            let mut view = EventView::from(&e);
                            if !seen.contains_key(&e.instance) {
                                // An instance that cannot be read now: its event is left out rather
                                // than sent unredacted (the history has it).
                                match super::personal::redactor(&app, &e.instance, &principal).await {
                                    Ok(r) => seen.insert(e.instance.clone(), r),
                                    Err(_) => continue,
                                };
                            }
                            if let Some(Some(program)) = seen.get(&e.instance) {
                                super::personal::redact_payload(program, &view.kind, &mut view.payload);
                            }
                            Event::default()
                                .event(view.kind.clone())
                                .id(format!("{}/{}", view.instance, view.seq))
                                .json_data(&view)
                                .unwrap_or_else(|_| Event::default().comment("unencodable event"))
                        }
                        Ok(_) => continue,
                        Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                        Err(RecvError::Closed) => return None,
                    };
                    return Some((Ok(event), (receiver, shutdown, client, seen)));
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
