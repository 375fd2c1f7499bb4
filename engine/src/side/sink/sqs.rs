//! Usage to an SQS queue: `SendMessageBatch` over the SQS JSON protocol, signed with SigV4, sent
//! with ureq on tokio's blocking pool so the side thread's event loop never waits on the
//! network.
//!
//! One message per journal batch ([`Batch::to_json`]: the rollups of up to a drain's worth of
//! requests, and their raw records when those are on), at most 10 messages and 256 KiB a call:
//! at full load that is a few calls a second, not one per request. SQS standard queues deliver
//! at least once, so consumers deduplicate by `batch_id`; on a FIFO queue (`.fifo`) the batch id
//! is the deduplication id, and SQS drops a repeat within its 5-minute window. FIFO messages are
//! spread over 16 message groups per boot, so the per-group limit does not cap a node's rate;
//! order within a boot is not needed (each batch carries its id range).
//!
//! Credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the
//! container credentials endpoint ECS/Fargate provides (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`).
//! Docs: <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::usage::batch::Batch;

/// Messages per `SendMessageBatch`: the API's maximum.
pub const BATCH: usize = 10;
/// Bytes of message bodies per `SendMessageBatch` (and so per message): the API's maximum.
pub(crate) const CALL_BYTES: usize = 256 * 1024;
/// FIFO message groups per boot.
const GROUPS: u64 = 16;
/// Each call must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// `SendMessageBatch` calls in flight at once: one call is a network round trip, so a
/// delivery of 300 records takes 4 round trips rather than 30.
pub const CONCURRENT_CALLS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    #[error("SQS request failed: {0}")]
    Transport(String),
    #[error("SQS answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("SQS refused {failed} of {sent} messages: {first}")]
    Partial {
        failed: usize,
        sent: usize,
        first: String,
    },
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where the container credentials endpoint is"
    )]
    NoCredentials,
    #[error("cannot sign the SQS request: {0}")]
    Signing(String),
}

impl SqsError {
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            SqsError::Transport(_) | SqsError::Partial { .. } => true,
            SqsError::Status { status, .. } => *status >= 500 || *status == 429,
            SqsError::NoCredentials | SqsError::Signing(_) => false,
        }
    }
}

#[derive(Clone)]
pub struct SqsClient {
    queue_url: String,
    region: String,
    fifo: bool,
    agent: ureq::Agent,
    /// Fixed credentials; none: resolved for every call (environment, container endpoint).
    credentials: Option<Credentials>,
}

impl SqsClient {
    pub fn new(queue_url: &str, region: &str) -> SqsClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build()
            .new_agent();
        SqsClient {
            queue_url: queue_url.to_string(),
            region: region.to_string(),
            fifo: queue_url.ends_with(".fifo"),
            agent,
            credentials: None,
        }
    }

    /// A client with fixed credentials (tools and tests).
    pub fn with_credentials(queue_url: &str, region: &str, id: &str, secret: &str) -> SqsClient {
        SqsClient {
            credentials: Some(Credentials::new(id, secret, None, None, "fixed")),
            ..SqsClient::new(queue_url, region)
        }
    }

    /// Sends every batch as one message, packed into calls of at most [`BATCH`] messages and
    /// [`CALL_BYTES`], [`CONCURRENT_CALLS`] calls at a time; entries SQS refused are sent again
    /// (up to 3 times). Any failure fails the whole delivery, which is then retried from the
    /// journal (a FIFO queue drops the repeats; consumers of a standard queue deduplicate by
    /// `batch_id`).
    pub async fn send(&self, batches: Vec<Batch>) -> Result<(), SqsError> {
        // The bodies are built on the blocking pool: with raw records on they are megabytes of
        // JSON, and the side thread's drain must not wait for them.
        let calls = tokio::task::spawn_blocking(move || pack(&batches))
            .await
            .map_err(|e| SqsError::Transport(e.to_string()))?;
        let mut calls = calls.into_iter();
        loop {
            let mut wave = tokio::task::JoinSet::new();
            for entries in calls.by_ref().take(CONCURRENT_CALLS) {
                let client = self.clone();
                wave.spawn_blocking(move || client.send_blocking(entries));
            }
            if wave.is_empty() {
                return Ok(());
            }
            while let Some(done) = wave.join_next().await {
                done.map_err(|e| SqsError::Transport(e.to_string()))??;
            }
        }
    }

    fn send_blocking(&self, mut pending: Vec<Entry>) -> Result<(), SqsError> {
        for _ in 0..3 {
            let failed = self.send_batch(&pending)?;
            if failed.is_empty() {
                return Ok(());
            }
            let sent = pending.len();
            let first = failed
                .first()
                .map(|(id, why)| format!("{id}: {why}"))
                .unwrap_or_default();
            pending.retain(|e| failed.iter().any(|(f, _)| *f == entry_id(&e.id)));
            if pending.is_empty() {
                return Err(SqsError::Partial {
                    failed: failed.len(),
                    sent,
                    first,
                });
            }
        }
        Err(SqsError::Partial {
            failed: pending.len(),
            sent: pending.len(),
            first: "retries exhausted".into(),
        })
    }

    /// One `SendMessageBatch`; returns the ids (and reasons) of entries refused.
    fn send_batch(&self, entries: &[Entry]) -> Result<Vec<(String, String)>, SqsError> {
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut entry = serde_json::json!({ "Id": entry_id(&e.id), "MessageBody": e.body });
                if self.fifo
                    && let Some(fields) = entry.as_object_mut()
                {
                    fields.insert("MessageDeduplicationId".into(), e.id.clone().into());
                    fields.insert("MessageGroupId".into(), e.group.clone().into());
                }
                entry
            })
            .collect();
        let body =
            serde_json::json!({ "QueueUrl": self.queue_url, "Entries": entries }).to_string();
        let response = self.call("AmazonSQS.SendMessageBatch", &body)?;
        let parsed: serde_json::Value =
            serde_json::from_str(&response).map_err(|e| SqsError::Transport(e.to_string()))?;
        Ok(parsed
            .get("Failed")
            .and_then(serde_json::Value::as_array)
            .map(|failed| {
                failed
                    .iter()
                    .map(|f| {
                        (
                            f["Id"].as_str().unwrap_or("").to_string(),
                            f["Message"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A signed JSON-protocol call; the response body on 2xx.
    pub fn call(&self, target: &str, body: &str) -> Result<String, SqsError> {
        let credentials = match &self.credentials {
            Some(fixed) => fixed.clone(),
            None => credentials()?,
        };
        let identity = credentials.into();
        let settings = SigningSettings::default();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sqs")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| SqsError::Signing(e.to_string()))?
            .into();
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target),
        ];
        let signable = SignableRequest::new(
            "POST",
            self.queue_url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| SqsError::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| SqsError::Signing(e.to_string()))?
            .into_parts();
        let mut request = self.agent.post(&self.queue_url);
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let mut response = request
            .send(body)
            .map_err(|e| SqsError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| SqsError::Transport(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(SqsError::Status {
                status,
                body: text.chars().take(300).collect(),
            });
        }
        Ok(text)
    }
}

/// The calls that send `batches`: a message each, at most [`BATCH`] messages and
/// [`CALL_BYTES`] of bodies a call.
fn pack(batches: &[Batch]) -> Vec<Vec<Entry>> {
    let mut calls: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for batch in batches {
        let body = batch.to_json();
        let group = batch
            .first_seq
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_shr(60)
            % GROUPS;
        let entry = Entry {
            id: batch.id().to_string(),
            group: format!("{:016x}-{group:x}", batch.boot),
            body,
        };
        let full = calls
            .last()
            .is_none_or(|call| call.len() >= BATCH || bytes + entry.body.len() > CALL_BYTES);
        if full {
            calls.push(Vec::new());
            bytes = 0;
        }
        bytes += entry.body.len();
        if let Some(call) = calls.last_mut() {
            call.push(entry);
        }
    }
    calls
}

/// One message of a call.
struct Entry {
    /// The batch id: the deduplication id on FIFO queues.
    id: String,
    group: String,
    body: String,
}

/// Batch entry ids allow letters, digits, `-` and `_` only.
fn entry_id(batch_id: &str) -> String {
    batch_id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
}

/// Environment credentials, else the ECS/Fargate container endpoint.
fn credentials() -> Result<Credentials, SqsError> {
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials::new(
            id,
            secret,
            env("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ));
    }
    let Some(relative) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") else {
        return Err(SqsError::NoCredentials);
    };
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .build()
        .new_agent();
    let text = agent
        .get(&format!("http://169.254.170.2{relative}"))
        .call()
        .and_then(|mut r| r.body_mut().with_config().limit(64 * 1024).read_to_string())
        .map_err(|e| SqsError::Transport(format!("container credentials: {e}")))?;
    let parsed: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| SqsError::Transport(e.to_string()))?;
    match (
        parsed.get("AccessKeyId").and_then(|v| v.as_str()),
        parsed.get("SecretAccessKey").and_then(|v| v.as_str()),
    ) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            id,
            secret,
            parsed
                .get("Token")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            None,
            "container",
        )),
        _ => Err(SqsError::NoCredentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::batch::tests::sample;

    #[test]
    fn calls_hold_at_most_ten_messages_and_256_kib() {
        let mut batches: Vec<Batch> = (0..25).map(|n| sample(n * 10, 10)).collect();
        // Three large batches: 100 KiB of raw records each.
        for big in batches.iter_mut().take(3) {
            let raw = big.raw[0].clone();
            big.raw = (0..800).map(|_| raw.clone()).collect();
        }
        let calls = pack(&batches);
        assert_eq!(
            calls.iter().map(Vec::len).sum::<usize>(),
            25,
            "a message per batch"
        );
        for call in &calls {
            assert!(call.len() <= BATCH);
            assert!(call.iter().map(|e| e.body.len()).sum::<usize>() <= CALL_BYTES);
        }
        let ids: std::collections::HashSet<&str> =
            calls.iter().flatten().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 25, "batch ids are the deduplication ids");
        assert!(
            calls
                .iter()
                .flatten()
                .all(|e| e.group.starts_with("deadbeef01234567-"))
        );
    }
}
