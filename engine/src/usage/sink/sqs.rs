//! Usage records to an SQS queue: `SendMessageBatch` (10 messages a call) over the SQS JSON
//! protocol, signed with SigV4, sent with ureq on tokio's blocking pool so the side thread's
//! event loop never waits on the network.
//!
//! One message per record, its body the record as JSON. SQS standard queues deliver at least
//! once, so consumers deduplicate by `record_id`; on a FIFO queue (`.fifo`) the record id is the
//! deduplication id, and SQS drops a repeat within its 5-minute window.
//!
//! Credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the
//! container credentials endpoint ECS/Fargate provides (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`).
//! Docs: <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::usage::record::UsageRecord;

/// Messages per `SendMessageBatch`: the API's maximum.
pub const BATCH: usize = 10;
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
    pub fn is_retryable(&self) -> bool {
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

    /// Sends every record, 10 per call, [`CONCURRENT_CALLS`] calls at a time; entries SQS
    /// refused are sent again (up to 3 times). Any failure fails the whole delivery, which is
    /// then retried from the journal (a FIFO queue drops the repeats; consumers of a standard
    /// queue deduplicate by `record_id`).
    pub async fn send(&self, records: &[UsageRecord]) -> Result<(), SqsError> {
        let chunks: Vec<&[UsageRecord]> = records.chunks(BATCH).collect();
        for wave in chunks.chunks(CONCURRENT_CALLS) {
            let mut calls = tokio::task::JoinSet::new();
            for chunk in wave {
                let client = self.clone();
                let bodies: Vec<(String, String)> = chunk
                    .iter()
                    .map(|r| (r.record_id(), message_body(r)))
                    .collect();
                calls.spawn_blocking(move || client.send_blocking(bodies));
            }
            while let Some(done) = calls.join_next().await {
                done.map_err(|e| SqsError::Transport(e.to_string()))??;
            }
        }
        Ok(())
    }

    fn send_blocking(&self, mut pending: Vec<(String, String)>) -> Result<(), SqsError> {
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
            pending.retain(|(id, _)| failed.iter().any(|(f, _)| *f == entry_id(id)));
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
    fn send_batch(&self, entries: &[(String, String)]) -> Result<Vec<(String, String)>, SqsError> {
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|(id, body)| {
                let mut entry = serde_json::json!({ "Id": entry_id(id), "MessageBody": body });
                if self.fifo
                    && let Some(fields) = entry.as_object_mut()
                {
                    fields.insert("MessageDeduplicationId".into(), id.clone().into());
                    fields.insert("MessageGroupId".into(), "usage".into());
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

/// Batch entry ids allow letters, digits, `-` and `_` only.
fn entry_id(record_id: &str) -> String {
    record_id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
}

/// The message body: the record as JSON.
pub fn message_body(r: &UsageRecord) -> String {
    serde_json::json!({
        "record_id": r.record_id(),
        "key_id": r.key_id,
        "assets": r.assets,
        "protocol": r.protocol.as_str(),
        "latency_bucket": r.latency_name(),
        "node": r.node,
        "ts_ms": r.ts_ms,
    })
    .to_string()
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
