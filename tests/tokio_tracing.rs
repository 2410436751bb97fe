//! The tokio server's `tracing` output: a `session` span per connection
//! with the peer and the authenticated role, denials and authentication
//! failures as events inside it.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{client_config, localhost, pki, preset_server, role_config};
use mbaps_tokio::AsyncCalls;
use mbaps_tokio::TokioClient;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Field name to value, as text.
type Fields = HashMap<String, String>;

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// An event: its level, its fields, and the spans it happened in (name
/// and fields).
type RecordedEvent = (Level, Fields, Vec<(String, Fields)>);

/// Events with the fields of the spans they happened in.
#[derive(Default)]
struct Recorded {
    spans: Mutex<HashMap<u64, (String, Fields)>>,
    /// Entered spans; the runtime is single-threaded, so one stack.
    stack: Mutex<Vec<u64>>,
    events: Mutex<Vec<RecordedEvent>>,
    next: AtomicU64,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Recorded>);

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = Fields::new();
        span.record(&mut Collect(&mut fields));
        let name = span.metadata().name().to_owned();
        self.0.spans.lock().unwrap().insert(id, (name, fields));
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some((_, fields)) = self.0.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Collect(fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        let spans = self.0.spans.lock().unwrap();
        let context = self
            .0
            .stack
            .lock()
            .unwrap()
            .iter()
            .filter_map(|id| spans.get(id).cloned())
            .collect();
        let level = *event.metadata().level();
        self.0.events.lock().unwrap().push((level, fields, context));
    }

    fn enter(&self, span: &Id) {
        self.0.stack.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut stack = self.0.stack.lock().unwrap();
        if let Some(at) = stack.iter().rposition(|id| *id == span.into_u64()) {
            stack.remove(at);
        }
    }
}

#[test]
fn sessions_are_spans_with_peer_and_role_and_denials_and_failures_are_events() {
    let recorder = Recorder::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(recorder.clone(), || {
        runtime.block_on(async {
            let server = preset_server().await;
            let viewer =
                TokioClient::connect(server.local_addr(), role_config("viewer"), localhost())
                    .await
                    .unwrap();
            assert!(viewer.write_single_register(1, 0, 1).await.is_err());
            let untrusted = client_config(pki(), &pki().untrusted_client);
            let refused = async {
                let client =
                    TokioClient::connect(server.local_addr(), untrusted, localhost()).await?;
                client.read_holding_registers(1, 0, 1).await
            };
            assert!(refused.await.is_err());
            server.shutdown().await.unwrap();
        });
    });
    let events = recorder.0.events.lock().unwrap();
    let in_session = |level: Level, needle: &str| {
        events.iter().find(|(l, fields, spans)| {
            *l == level
                && fields.get("message").is_some_and(|m| m.contains(needle))
                && spans
                    .iter()
                    .any(|(name, f)| name == "session" && f.contains_key("peer"))
        })
    };
    let denied = in_session(Level::INFO, "denied").expect("a denial event in a session span");
    let session = denied.2.iter().find(|(name, _)| name == "session").unwrap();
    assert_eq!(session.1.get("role").map(String::as_str), Some("viewer"));
    assert!(
        in_session(Level::WARN, "failed").is_some(),
        "the untrusted client's failure is a warning in its session span: {events:#?}"
    );
}
