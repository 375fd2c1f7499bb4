//! One venue's REST fallback: polls the venue's ticker for the assets the price thread reports
//! stale, and hands the prices back marked as REST. One request at a time; a request that
//! arrives while one is running is dropped (the next staleness check asks again).

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::Thread;

use beast_core::{Channel, Symbol};

use super::status::FeedStatus;
use super::{FeedEvent, FeedOptions, Trust, wall_ms};
use crate::exchange::Exchange;

pub struct Poller {
    exchange: Arc<dyn Exchange>,
    base: String,
    agent: ureq::Agent,
    max_body: u64,
    status: Arc<FeedStatus>,
    results: mpsc::SyncSender<FeedEvent>,
    notify: Thread,
}

impl Poller {
    pub fn new(
        exchange: Arc<dyn Exchange>,
        base: String,
        trust: &Trust,
        options: FeedOptions,
        status: Arc<FeedStatus>,
        results: mpsc::SyncSender<FeedEvent>,
        notify: Thread,
    ) -> Poller {
        use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
        let roots = match trust {
            Trust::WebPki => RootCerts::WebPki,
            Trust::Only(certificate) => {
                RootCerts::new_with_certs(&[Certificate::from_der(certificate.as_ref()).to_owned()])
            }
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .unversioned_rustls_crypto_provider(super::tls::provider())
            .build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(options.rest_timeout))
            .http_status_as_error(false)
            .user_agent("beast-price-server")
            .tls_config(tls)
            .build()
            .new_agent();
        Poller {
            exchange,
            base,
            agent,
            max_body: u64::try_from(options.max_message * 16).unwrap_or(u64::MAX),
            status,
            results,
            notify,
        }
    }

    pub fn run(self, requests: mpsc::Receiver<Vec<Symbol>>) {
        // Ends when the price thread drops its sender.
        while let Ok(assets) = requests.recv() {
            self.status
                .rest_active
                .store(!assets.is_empty(), std::sync::atomic::Ordering::Relaxed);
            if assets.is_empty() {
                continue;
            }
            let url = self.exchange.rest_url(&self.base, &assets);
            FeedStatus::add(&self.status.rest_requests, 1);
            match self.fetch(&url) {
                Ok(body) => {
                    self.status.rest_log.reset();
                    self.deliver(&body, &assets);
                }
                Err(e) => {
                    FeedStatus::add(&self.status.rest_errors, 1);
                    if let Some(more) = self.status.rest_log.admit(beast_core::clock::wall_ms()) {
                        tracing::warn!(venue = self.exchange.venue().name(), url = %url, error = %e, failed_since_last_line = more, "REST fallback failed (logged once a minute while it fails)");
                    }
                }
            }
        }
    }

    fn fetch(&self, url: &str) -> Result<String, String> {
        let mut response = self.agent.get(url).call().map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_body)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        if status != 200 && !body.trim_start().starts_with(['{', '[']) {
            return Err(format!("HTTP {status}"));
        }
        Ok(body)
    }

    fn deliver(&self, body: &str, wanted: &[Symbol]) {
        let venue = self.exchange.venue();
        let received_ms = wall_ms();
        let mut delivered = 0u64;
        let parsed = self.exchange.parse_rest(body, received_ms, &mut |update| {
            if !wanted.contains(&update.asset) || update.price.is_zero() {
                return;
            }
            let event = FeedEvent {
                venue,
                channel: Channel::Rest,
                asset: update.asset,
                price: update.price,
                exchange_ms: update.exchange_ms,
                received_ms,
            };
            if self.results.try_send(event).is_ok() {
                delivered += 1;
            }
        });
        match parsed {
            Ok(_) => {
                FeedStatus::add(&self.status.rest_prices, delivered);
                if delivered > 0 {
                    self.notify.unpark();
                }
            }
            Err(e) => {
                FeedStatus::add(&self.status.rest_errors, 1);
                tracing::warn!(venue = venue.name(), error = %e, "REST fallback response malformed");
            }
        }
    }
}
