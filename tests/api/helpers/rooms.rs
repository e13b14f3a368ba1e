//! Waiting-room fixtures.

use crate::helpers::TestApp;

/// Starts the pacer (the test app runs the API and the booking worker only).
pub fn start_pacer(app: &TestApp) {
    tokio::spawn(atomicseats::waiting_room::pacer::run(
        app.state.clone(),
        app.shutdown.clone(),
    ));
}
