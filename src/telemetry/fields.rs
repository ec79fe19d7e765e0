//! Span fields for the JSON log format, recorded without re-parsing.
//!
//! The JSON log lines carry the current span's fields (`message_id`, `key`,
//! `set`, `request_id`, ...). tracing-subscriber keeps them as JSON text,
//! and its own field formatter adds a field recorded later by parsing that
//! text, inserting and serializing it again: three times per message, for
//! the fields known only once the message is decoded. This formatter
//! appends the new fields to the text instead. A field recorded twice is
//! then in the text twice, and the later one wins when a log line is
//! written, as before: the JSON formatter reads the text into a map.

use std::fmt;

use tracing::span::Record;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{JsonVisitor, Writer};

/// The span-field formatter of the JSON log layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanJson;

impl<'w> FormatFields<'w> for SpanJson {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = JsonVisitor::new(&mut writer);
        fields.record(&mut v);
        v.finish()
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let mut new = String::new();
        self.format_fields(Writer::new(&mut new), fields)?;
        let old = current.fields.trim_end();
        match (old.strip_suffix('}'), new.strip_prefix('{')) {
            // Nothing new, or nothing before: the one object as it is.
            (_, Some("}")) => {}
            (Some(head), Some(tail)) if head.trim() != "{" => {
                let mut joined = String::with_capacity(head.len() + 1 + tail.len());
                joined.push_str(head);
                joined.push(',');
                joined.push_str(tail);
                current.fields = joined;
            }
            _ => current.fields = new,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::{Value as Json, json};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The `span` object of each JSON line logged by `f`.
    fn logged_spans(f: impl FnOnce()) -> Vec<Json> {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(SpanJson)
            .with_writer(move || out.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<Json>(l).unwrap()["span"].clone())
            .collect()
    }

    #[test]
    fn fields_recorded_later_are_in_the_log_lines_and_the_last_record_wins() {
        let spans = logged_spans(|| {
            let span = tracing::info_span!(
                "message",
                message_id = "m1",
                key = tracing::field::Empty,
                set = tracing::field::Empty,
                n = 1,
            );
            let _in = span.enter();
            tracing::info!("before");
            span.record("key", "pk=a \"quoted\", {braced}");
            span.record("set", "summary");
            tracing::info!("after");
            span.record("set", "other");
            span.record("n", 2);
            tracing::info!("again");
        });
        assert_eq!(
            spans,
            vec![
                json!({"name": "message", "message_id": "m1", "n": 1}),
                json!({"name": "message", "message_id": "m1", "n": 1,
                       "key": "pk=a \"quoted\", {braced}", "set": "summary"}),
                json!({"name": "message", "message_id": "m1", "n": 2,
                       "key": "pk=a \"quoted\", {braced}", "set": "other"}),
            ]
        );
    }

    #[test]
    fn a_span_without_fields_at_first_takes_the_recorded_ones() {
        let spans = logged_spans(|| {
            let span = tracing::info_span!("bare", later = tracing::field::Empty);
            let _in = span.enter();
            tracing::info!("empty");
            span.record("later", true);
            tracing::info!("recorded");
        });
        assert_eq!(
            spans,
            vec![
                json!({"name": "bare"}),
                json!({"name": "bare", "later": true}),
            ]
        );
    }
}
