//! Sends the `submit_sm` of one submission, part after part, on the link it was handed to:
//! retries throttled parts after a pause, and reports what became of each part.

use std::sync::Arc;

use rusmpp::pdus::SubmitSm;
use rusmppc::{Client, error::Error as ClientError};
use tokio::sync::OwnedSemaphorePermit;

use crate::{
    SmppEvent,
    client::{Job, Shared},
    codes::{ESME_RMSGQFUL, ESME_RTHROTTLED},
};

/// What became of one part.
enum PartOutcome {
    Accepted(String),
    Refused {
        status: u32,
        permanent: bool,
    },
    /// No answer: the link dropped, the response timed out, or the client is stopping.
    Unanswered,
}

/// Sends every part of a job; holds the window permit until the last answer.
pub(crate) async fn send_submission(
    shared: Arc<Shared>,
    client: Client,
    job: Job,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let reference = job.reference;
    for (part, pdu) in job.pdus.into_iter().enumerate() {
        let event = match send_part(&shared, &client, pdu).await {
            PartOutcome::Accepted(message_id) => {
                shared
                    .emit(SmppEvent::Submitted {
                        reference,
                        part,
                        message_id,
                    })
                    .await;
                continue;
            }
            PartOutcome::Refused { status, permanent } => SmppEvent::Rejected {
                reference,
                part,
                status,
                permanent,
            },
            PartOutcome::Unanswered => SmppEvent::Requeue { reference },
        };
        shared.emit(event).await;
        return;
    }
}

async fn send_part(shared: &Shared, client: &Client, pdu: SubmitSm) -> PartOutcome {
    let mut pause = shared.config.throttle_backoff;
    let mut retries = 0;
    loop {
        if !shared.wait_for_turn().await {
            return PartOutcome::Unanswered;
        }
        shared.stats.sent();
        // rusmppc starts its response timer only once the PDU is written; bound the whole
        // exchange too, so a request stuck before the write cannot hold a window slot forever.
        let deadline = shared.config.response_timeout * 2;
        let Ok(result) = tokio::time::timeout(deadline, client.submit_sm(pdu.clone())).await else {
            shared.stats.answered(false, std::time::Instant::now());
            tracing::warn!(?deadline, "submit_sm neither written nor answered in time");
            return PartOutcome::Unanswered;
        };
        let now = std::time::Instant::now();
        let response = match result {
            Ok(response) => {
                shared.stats.answered(true, now);
                return PartOutcome::Accepted(response.message_id().to_string());
            }
            Err(ClientError::UnexpectedResponse { response }) => response,
            Err(error) => {
                shared.stats.answered(false, now);
                tracing::warn!(%error, "submit_sm unanswered");
                return PartOutcome::Unanswered;
            }
        };
        shared.stats.answered(false, now);
        let status = u32::from(response.status());
        let transient = matches!(status, ESME_RTHROTTLED | ESME_RMSGQFUL);
        if !transient || retries >= shared.config.max_throttle_retries {
            return PartOutcome::Refused {
                status,
                permanent: !transient,
            };
        }
        retries += 1;
        tracing::info!(status, retries, ?pause, "SMSC asks us to slow down");
        shared.pause_sending(pause);
        pause = pause.saturating_mul(2);
    }
}
