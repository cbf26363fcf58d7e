//! `GET /metrics`: Prometheus text for admins (a bearer token, as for the
//! API): per world its players, open tabs, whether it runs and its last
//! activity; how many keys are in use. Built fresh from the store on every
//! scrape, so destroyed worlds leave no stale series.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusBuilder;
use tavern_core::CoreError;
use tavern_types::ObservedState;

use crate::extract::Authed;
use crate::{ApiError, AppState};

pub(crate) async fn metrics(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> Result<Response, ApiError> {
    if !caller.is_admin() {
        return Err(CoreError::Forbidden("only an admin may read the metrics".into()).into());
    }
    let worlds = s.tavern.list_instances(&caller).await?;
    let licenses = s.tavern.list_licenses(&caller).await?;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        for v in &worlds {
            let i = &v.instance;
            let world = i.slug.to_string();
            metrics::gauge!("tavern_world_players", "world" => world.clone())
                .set(f64::from(i.players));
            metrics::gauge!("tavern_world_sockets", "world" => world.clone())
                .set(f64::from(i.sockets));
            let up = if i.state == ObservedState::Running {
                1.0
            } else {
                0.0
            };
            metrics::gauge!("tavern_world_up", "world" => world.clone()).set(up);
            if let Some(t) = i.last_activity_at {
                metrics::gauge!("tavern_world_last_activity_timestamp_seconds", "world" => world)
                    .set(t.as_millisecond() as f64 / 1000.0);
            }
        }
        let in_use = licenses
            .iter()
            .filter(|l| l.license.bound_to.is_some())
            .count();
        metrics::gauge!("tavern_licenses", "state" => "in_use").set(in_use as f64);
        metrics::gauge!("tavern_licenses", "state" => "free").set((licenses.len() - in_use) as f64);
    });
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response())
}
