//! What an outbox row asks the notifier to do ([`Job`]): send one of the emails ([`Notice`]),
//! each with its templates compiled in from `templates/<kind>/{subject.txt, body.txt,
//! body.html}` — a kind without them does not compile — or run a refund through the payment
//! provider (not mailed; its email is a notice it writes once the refund is recorded).

macro_rules! notices {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// An email the notifier sends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Notice {
            $($(#[$doc])* $variant,)*
        }

        impl Notice {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Notice] = &[$(Self::$variant,)*];

            /// The stored name (`outbox.kind`), also the folder of its templates.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// Its `(subject, text, html)` templates.
            pub fn templates(self) -> (&'static str, &'static str, &'static str) {
                match self {
                    $(Self::$variant => (
                        include_str!(concat!("templates/", $name, "/subject.txt")),
                        include_str!(concat!("templates/", $name, "/body.txt")),
                        include_str!(concat!("templates/", $name, "/body.html")),
                    ),)*
                }
            }
        }
    };
}

notices! {
    /// A booking confirmed at once.
    BookingConfirmed = "booking_confirmed",
    /// Part of a booking confirmed, the rest waitlisted.
    BookingPartial = "booking_partial",
    /// A booking put on the waitlist.
    BookingWaitlisted = "booking_waitlisted",
    /// A booking rejected (the reason in the payload).
    BookingRejected = "booking_rejected",
    /// Seats given to a waitlisted request.
    WaitlistConfirmed = "waitlist_confirmed",
    /// A booking cancelled by its buyer.
    BookingCancelled = "booking_cancelled",
    /// The event was cancelled: to a buyer with seats.
    EventCancelled = "event_cancelled",
    /// The event was cancelled: to a buyer on its waitlist.
    EventCancelledWaitlist = "event_cancelled_waitlist",
    /// The buyer left the waitlist.
    WaitlistLeft = "waitlist_left",
    /// Confirm your address (the one kind sent to an unconfirmed address).
    VerifyEmail = "verify_email",
    /// Someone registered with an address that has an account (to its owner).
    AccountExists = "account_exists",
    /// Seats held while the buyer pays.
    BookingHeld = "booking_held",
    /// A hold ran out unpaid.
    HoldExpired = "hold_expired",
    /// A hold was paid (or a late payment took its seats back).
    BookingPaid = "booking_paid",
    /// A refund was made.
    BookingRefunded = "booking_refunded",
}

impl Notice {
    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

/// The stored kind of a refund job.
pub const REFUND: &str = "refund";

/// What an outbox row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Send this email.
    Email(Notice),
    /// Run a refund through the payment provider.
    Refund,
}

impl Job {
    /// The job of a stored kind (`None`: a kind this version does not know).
    pub fn parse(kind: &str) -> Option<Self> {
        if kind == REFUND {
            Some(Self::Refund)
        } else {
            Notice::parse(kind).map(Self::Email)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for k in Notice::ALL {
            assert_eq!(Notice::parse(k.as_str()), Some(*k));
            assert_eq!(Job::parse(k.as_str()), Some(Job::Email(*k)));
            assert!(names.insert(k.as_str()), "{} twice", k.as_str());
        }
        assert_eq!(Job::parse(REFUND), Some(Job::Refund));
        assert_eq!(
            Job::parse("booking_confirmd"),
            None,
            "a misspelt kind is unknown"
        );
    }
}
