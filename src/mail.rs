//! Outgoing mail: lettre over SMTP (STARTTLS, TLS or plain to a loopback relay, with optional
//! credentials — the seed's `MAIL_USER`/`MAIL_PASS` for Gmail keep working), or `log` for local
//! development, which logs the message kind and subject instead of sending (never the recipient).
//!
//! Reads `[mail]`: `transport`, `smtp_host`, `smtp_port`, `smtp_tls`, `username`, `password`,
//! `from`.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{MailSettings, MailTransport, SmtpTls};

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (connection refused, timeout, 4xx).
    #[error("transient mail failure: {0}")]
    Transient(String),
    /// Retrying will not help (5xx, bad address).
    #[error("permanent mail failure: {0}")]
    Permanent(String),
    /// Not sent: the recipient has not confirmed their address (only the confirmation itself
    /// goes to an unconfirmed address).
    #[error("not sent: the recipient's email address is not verified")]
    Unverified,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// Sends rendered notifications.
#[derive(Clone)]
pub enum Mailer {
    /// A real SMTP server.
    Smtp {
        /// The pooled transport.
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The From mailbox.
        from: Mailbox,
    },
    /// Only logs (local development).
    Log,
}

impl Mailer {
    /// Builds the configured mailer.
    pub fn from_settings(m: &MailSettings) -> anyhow::Result<Self> {
        if m.transport == MailTransport::Log {
            return Ok(Self::Log);
        }
        let from_raw = if m.from.trim().is_empty() {
            m.username.clone()
        } else {
            m.from.clone()
        };
        let from: Mailbox = from_raw
            .parse()
            .map_err(|e| anyhow::anyhow!("`mail.from` is not a mailbox: {e}"))?;
        let mut builder = match m.smtp_tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&m.smtp_host),
            SmtpTls::Starttls => {
                let tls = TlsParameters::new(m.smtp_host.clone())
                    .map_err(|e| anyhow::anyhow!("TLS for `mail.smtp_host`: {e}"))?;
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&m.smtp_host)
                    .tls(Tls::Required(tls))
            }
            SmtpTls::Tls => {
                let tls = TlsParameters::new(m.smtp_host.clone())
                    .map_err(|e| anyhow::anyhow!("TLS for `mail.smtp_host`: {e}"))?;
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&m.smtp_host)
                    .tls(Tls::Wrapper(tls))
            }
        }
        .port(m.smtp_port)
        .timeout(Some(Duration::from_secs(10)));
        if !m.username.is_empty() {
            let password = m
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(m.username.clone(), password));
        }
        Ok(Self::Smtp {
            transport: builder.build(),
            from,
        })
    }

    /// Sends notification `id` to `to`. Its Message-ID is derived from the id, so a copy sent
    /// again (the at-least-once window at the SMTP boundary) carries the same Message-ID and
    /// receivers can recognise it.
    pub async fn send(
        &self,
        to: &str,
        id: i64,
        kind: &str,
        mail: &Rendered,
    ) -> Result<(), SendError> {
        match self {
            Self::Log => {
                tracing::info!(notification.kind = kind, mail.subject = %mail.subject, "mail (log transport, not sent)");
                Ok(())
            }
            Self::Smtp { transport, from } => {
                let to: Mailbox = to
                    .parse()
                    .map_err(|e| SendError::Permanent(format!("recipient address: {e}")))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject.clone())
                    .message_id(Some(format!("<notification-{id}@atomicseats>")))
                    .multipart(MultiPart::alternative_plain_html(
                        mail.text.clone(),
                        mail.html.clone(),
                    ))
                    .map_err(|e| SendError::Permanent(format!("building the message: {e}")))?;
                match transport.send(message).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                    Err(e) => Err(SendError::Transient(e.to_string())),
                }
            }
        }
    }
}

impl crate::state::AppState {
    /// The mail sender (a part of the state, see [`crate::state`]).
    pub fn mailer(&self) -> &Mailer {
        self.part()
            .unwrap_or_else(|| crate::state::missing_part("mailer"))
    }
}
