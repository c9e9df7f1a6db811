//! The console's pages, one module per area; each module owns its routes, its templates
//! (`templates/console/<area>*.html`) and its form posts.
//! - [`dashboard`]: the fleet dashboard at `/`;
//! - [`devices`]: the device list and a device's page (Security, Users, Logs, Diagnosis);
//! - [`actions`]: the actions on a device (forms posted from the device page; their buttons and dialogs are the
//!   `console/device_actions.html` partial the device page includes);
//! - [`groups`]: groups, their escrow settings, enrollment tokens and profiles;
//! - [`reports`]: CSV exports and the fleet summary.

pub mod actions;
pub mod dashboard;
pub mod devices;
pub mod groups;
pub mod reports;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(dashboard::router())
        .merge(devices::router())
        .merge(actions::router())
        .merge(groups::router())
        .merge(reports::router())
}
