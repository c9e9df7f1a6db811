//! The one builder of a [`NewEvent`]: stamped with the clock, kind from [`EventKind`] (defined once, in
//! `store`, which owns the event schema).
//!
//! Event details are built from metadata only (sizes, key ids, reasons); never from a token or a body.

use store::{NewEvent, Outcome};

use crate::{Clock, EventKind, MdmService, Scoped};

/// An event about `subject` (and the enrollment it concerns), stamped now.
pub(crate) fn new_event(
    clock: &dyn Clock,
    subject: &str,
    enrollment_id: Option<&str>,
    kind: EventKind,
    outcome: Outcome,
    detail: impl Into<String>,
) -> NewEvent {
    NewEvent {
        subject: subject.to_string(),
        enrollment_id: enrollment_id.map(str::to_string),
        kind,
        outcome,
        detail: detail.into(),
        at: clock.now_millis(),
    }
}

impl MdmService {
    /// [`new_event`] with the service's clock.
    pub(crate) fn event(
        &self,
        subject: &str,
        enrollment_id: Option<&str>,
        kind: EventKind,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> NewEvent {
        self.scoped()
            .event(subject, enrollment_id, kind, outcome, detail)
    }
}

impl<S: ?Sized> Scoped<'_, S> {
    /// [`new_event`] with the service's clock.
    pub(crate) fn event(
        &self,
        subject: &str,
        enrollment_id: Option<&str>,
        kind: EventKind,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> NewEvent {
        new_event(self.clock, subject, enrollment_id, kind, outcome, detail)
    }
}
