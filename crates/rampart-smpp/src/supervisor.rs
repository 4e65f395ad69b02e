//! The background task: binds, runs the link until it drops or the client stops, rebinds with
//! backoff, answers what the SMSC sends, and hands queued submissions to sending tasks.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use rusmpp::{CommandStatus, Pdu, pdus::DeliverSmResp};
use rusmppc::Event;
use tokio::{
    sync::{OwnedSemaphorePermit, mpsc, watch},
    task::JoinSet,
    time::{sleep, timeout},
};

use crate::{
    LinkState, SmppEvent,
    backoff::Backoff,
    client::{Job, Shared},
    inbound::{Delivery, read_deliver_sm},
    link::{Link, SessionRole, Sessions},
    reassembly::Reassembler,
    submitter::send_submission,
    tls::TlsSetup,
};

/// Why a bound link stopped.
enum LinkEnd {
    /// The client is stopping (shutdown, or every handle dropped).
    Stop,
    /// The link broke; rebind.
    Dropped(String),
}

pub(crate) async fn run_supervisor(
    shared: Arc<Shared>,
    tls: Option<TlsSetup>,
    mut jobs: mpsc::Receiver<Job>,
    finished: watch::Sender<bool>,
) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect_min_backoff, config.reconnect_max_backoff);
    let mut reassembler = Reassembler::new(config.reassembly);
    let mut tasks = JoinSet::new();
    while !shared.stopping.is_cancelled() && !jobs.is_closed() {
        let established = tokio::select! {
            biased;
            () = shared.stopping.cancelled() => break,
            established = Link::establish(config, tls.as_ref()) => established,
        };
        let reason = match established {
            Err(error) => error.to_string(),
            Ok(mut link) => {
                backoff.reset();
                shared.stats.set_bound(true);
                shared.emit(SmppEvent::Link(LinkState::Bound)).await;
                let end =
                    run_link(&shared, &mut link, &mut jobs, &mut tasks, &mut reassembler).await;
                shared.stats.set_bound(false);
                match end {
                    LinkEnd::Stop => {
                        shared.stopping.cancel();
                        finish_tasks(&shared, &mut tasks).await;
                        link.sessions
                            .unbind_and_close(config.response_timeout)
                            .await;
                        shared
                            .emit(SmppEvent::Link(LinkState::Down {
                                reason: "shut down".into(),
                            }))
                            .await;
                        break;
                    }
                    LinkEnd::Dropped(reason) => {
                        link.sessions.close(config.response_timeout).await;
                        requeue_queued(&shared, &mut jobs).await;
                        reason
                    }
                }
            }
        };
        tracing::warn!(%reason, "SMPP link down");
        shared
            .emit(SmppEvent::Link(LinkState::Down { reason }))
            .await;
        let delay = backoff.next_delay(rand::random::<f64>());
        tokio::select! {
            biased;
            () = shared.stopping.cancelled() => break,
            () = sleep(delay) => {}
        }
    }
    shared.stopping.cancel();
    jobs.close();
    while let Some(job) = jobs.recv().await {
        shared
            .emit(SmppEvent::Requeue {
                reference: job.reference,
            })
            .await;
    }
    finish_tasks(&shared, &mut tasks).await;
    // Nobody may be waiting; that is fine.
    let _ = finished.send(true);
}

/// Hands back the submission queued for the link that just dropped, instead of keeping it
/// for a link that may not come back soon: the caller may have another way out.
async fn requeue_queued(shared: &Shared, jobs: &mut mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.try_recv() {
        shared
            .emit(SmppEvent::Requeue {
                reference: job.reference,
            })
            .await;
    }
}

/// Waits for the sending tasks; they stop at their next step once `stopping` is cancelled,
/// and a `submit_sm` in flight ends within the response timeout.
async fn finish_tasks(shared: &Shared, tasks: &mut JoinSet<()>) {
    let limit = shared.config.response_timeout * 3 + Duration::from_secs(1);
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if timeout(limit, all_done).await.is_err() {
        tracing::error!("SMPP sending tasks did not finish in time; aborting them");
        tasks.abort_all();
    }
}

async fn run_link(
    shared: &Arc<Shared>,
    link: &mut Link,
    jobs: &mut mpsc::Receiver<Job>,
    tasks: &mut JoinSet<()>,
    reassembler: &mut Reassembler,
) -> LinkEnd {
    let Some(submitter) = link.sessions.submitter().cloned() else {
        return LinkEnd::Dropped("no session can submit".into());
    };
    let mut permit: Option<OwnedSemaphorePermit> = None;
    loop {
        tokio::select! {
            biased;
            () = shared.stopping.cancelled() => return LinkEnd::Stop,
            event = link.events.next() => match event {
                None => return LinkEnd::Dropped("the connection closed".into()),
                Some((role, Event::Error(error))) => {
                    return LinkEnd::Dropped(format!("{role:?} session: {error}"));
                }
                Some((role, Event::Incoming(command))) => {
                    let answered = answer_incoming(shared, &link.sessions, role, command, reassembler).await;
                    if let Err(reason) = answered {
                        return LinkEnd::Dropped(reason);
                    }
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = joined {
                    tracing::error!(%error, "an SMPP sending task failed");
                }
            }
            acquired = Arc::clone(&shared.window).acquire_owned(), if permit.is_none() => {
                match acquired {
                    Ok(acquired) => permit = Some(acquired),
                    Err(_) => return LinkEnd::Stop,
                }
            }
            job = jobs.recv(), if permit.is_some() => match job {
                None => return LinkEnd::Stop,
                Some(job) => {
                    tasks.spawn(send_submission(
                        Arc::clone(shared),
                        submitter.clone(),
                        job,
                        permit.take(),
                    ));
                }
            },
        }
    }
}

/// Handles one PDU the SMSC sent. `Err` carries why the link must be dropped.
async fn answer_incoming(
    shared: &Shared,
    sessions: &Sessions,
    role: SessionRole,
    command: rusmpp::Command,
    reassembler: &mut Reassembler,
) -> Result<(), String> {
    let Some(session) = sessions.session(role) else {
        return Err(format!("a PDU arrived on an unknown {role:?} session"));
    };
    let sequence_number = command.sequence_number();
    let answer = match command.pdu() {
        Some(Pdu::DeliverSm(deliver)) => {
            match read_deliver_sm(deliver, shared.config.gsm7_packed) {
                Delivery::Receipt(event) => shared.emit(event).await,
                Delivery::Part(part) => {
                    let completed = reassembler.push(part, std::time::Instant::now());
                    shared.stats.set_mo_dropped(reassembler.dropped_total());
                    if let Some(event) = completed {
                        shared.emit(event).await;
                    }
                }
                Delivery::UnusableReceipt => {
                    tracing::warn!("delivery receipt without a message id ignored");
                }
            }
            // Answered after the event is queued, so a receipt is never acknowledged unseen.
            session
                .deliver_sm_resp(sequence_number, DeliverSmResp::default())
                .await
        }
        Some(Pdu::Unbind) => {
            if let Err(error) = session.unbind_resp(sequence_number).await {
                tracing::debug!(%error, "unbind_resp not sent");
            }
            return Err("the SMSC unbound".into());
        }
        _ if command.id().is_response() => {
            tracing::debug!(id = ?command.id(), sequence_number, "late or unexpected response ignored");
            Ok(())
        }
        Some(Pdu::AlertNotification(_)) | Some(Pdu::Outbind(_)) => Ok(()),
        _ => {
            tracing::warn!(id = ?command.id(), "unsupported request from the SMSC");
            session
                .status(CommandStatus::EsmeRinvcmdid)
                .generic_nack(sequence_number)
                .await
        }
    };
    answer.map_err(|error| format!("cannot answer the SMSC: {error}"))
}
