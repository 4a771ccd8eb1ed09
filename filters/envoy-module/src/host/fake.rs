//! In-memory hosts that record what the glue did: the native unit tests run the glue on them
//! instead of Envoy (test builds only; nothing outside this crate's tests uses them).

use super::{
    BridgeHost, CalloutError, Chunks, Close, CounterId, Direction, GaugeId, HistogramId, Level,
    MetricsRegistry, NetworkHost,
};
use std::collections::BTreeMap;

/// A fake metrics registry: names in definition order.
#[derive(Debug, Default)]
pub struct FakeRegistry {
    pub counters: Vec<String>,
    pub histograms: Vec<String>,
    pub gauges: Vec<String>,
    /// Refuse definitions (to test config failure paths).
    pub refuse: bool,
}

impl MetricsRegistry for FakeRegistry {
    fn define_counter(&mut self, name: &str) -> Option<CounterId> {
        if self.refuse {
            return None;
        }
        self.counters.push(name.to_owned());
        Some(CounterId(self.counters.len() - 1))
    }
    fn define_histogram(&mut self, name: &str) -> Option<HistogramId> {
        if self.refuse {
            return None;
        }
        self.histograms.push(name.to_owned());
        Some(HistogramId(self.histograms.len() - 1))
    }
    fn define_gauge(&mut self, name: &str) -> Option<GaugeId> {
        if self.refuse {
            return None;
        }
        self.gauges.push(name.to_owned());
        Some(GaugeId(self.gauges.len() - 1))
    }
}

/// A recorded callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    pub id: u64,
    pub cluster: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// A fake connection. Buffers are lists of chunks, as Envoy hands them.
#[derive(Debug, Default)]
pub struct FakeNetworkHost {
    pub downstream: Vec<Vec<u8>>,
    pub upstream: Vec<Vec<u8>>,
    pub written_to_client: Vec<u8>,
    pub closed: Option<Close>,
    /// Counter totals by id.
    pub counters: BTreeMap<usize, u64>,
    pub histograms: BTreeMap<usize, Vec<u64>>,
    pub gauges: BTreeMap<usize, i64>,
    pub callouts: Vec<Callout>,
    /// Make the next callout fail to start.
    pub fail_callout: Option<CalloutError>,
    pub logs: std::cell::RefCell<Vec<(Level, String)>>,
}

impl FakeNetworkHost {
    pub fn counter(&self, id: CounterId) -> u64 {
        self.counters.get(&id.0).copied().unwrap_or(0)
    }
    fn buf(&mut self, dir: Direction) -> &mut Vec<Vec<u8>> {
        match dir {
            Direction::Downstream => &mut self.downstream,
            Direction::Upstream => &mut self.upstream,
        }
    }
}

impl NetworkHost for FakeNetworkHost {
    fn chunks(&self, dir: Direction) -> Chunks<'_> {
        let b = match dir {
            Direction::Downstream => &self.downstream,
            Direction::Upstream => &self.upstream,
        };
        b.iter().map(Vec::as_slice).collect()
    }
    fn buffered(&self, dir: Direction) -> usize {
        self.chunks(dir).iter().map(|c| c.len()).sum()
    }
    fn drain(&mut self, dir: Direction, mut n: usize) -> bool {
        let b = self.buf(dir);
        let total: usize = b.iter().map(Vec::len).sum();
        if n > total {
            return false;
        }
        while n > 0 {
            let first = &mut b[0];
            if first.len() <= n {
                n -= first.len();
                b.remove(0);
            } else {
                first.drain(..n);
                n = 0;
            }
        }
        true
    }
    fn write_to_client(&mut self, data: &[u8], _end_stream: bool) {
        self.written_to_client.extend_from_slice(data);
    }
    fn append(&mut self, dir: Direction, data: &[u8]) {
        if !data.is_empty() {
            self.buf(dir).push(data.to_vec());
        }
    }
    fn prepend_write(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.upstream.insert(0, data.to_vec());
        }
    }
    fn close(&mut self, how: Close) {
        self.closed.get_or_insert(how);
    }
    fn increment_counter(&mut self, id: CounterId, by: u64) {
        *self.counters.entry(id.0).or_default() += by;
    }
    fn record_histogram(&mut self, id: HistogramId, value: u64) {
        self.histograms.entry(id.0).or_default().push(value);
    }
    fn gauge_add(&mut self, id: GaugeId, delta: i64) {
        *self.gauges.entry(id.0).or_default() += delta;
    }
    fn set_gauge(&mut self, id: GaugeId, value: u64) {
        self.gauges.insert(id.0, value as i64);
    }
    fn http_callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutError> {
        if let Some(e) = self.fail_callout.take() {
            return Err(e);
        }
        let id = self.callouts.len() as u64 + 1;
        self.callouts.push(Callout {
            id,
            cluster: cluster.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            body: body.to_vec(),
            timeout_ms,
        });
        Ok(id)
    }
    fn connection_id(&self) -> u64 {
        7
    }
    fn scheduler(&mut self) -> Option<Box<dyn super::Wake>> {
        None
    }
    fn log(&self, level: Level, msg: &str) {
        self.logs.borrow_mut().push((level, msg.to_owned()));
    }
}

/// An answer a fake bridge sent: status, headers, body.
pub type FakeResponse = (u32, Vec<(String, Vec<u8>)>, Vec<u8>);

/// A fake bridge instance.
#[derive(Debug, Default)]
pub struct FakeBridgeHost {
    pub request_headers: Vec<(String, Vec<u8>)>,
    pub request: Vec<Vec<u8>>,
    pub response: Vec<Vec<u8>>,
    pub sent_upstream: Vec<u8>,
    pub upstream_end_stream: bool,
    pub responses: Vec<FakeResponse>,
}

impl BridgeHost for FakeBridgeHost {
    fn request_header(&self, key: &str) -> Option<&[u8]> {
        self.request_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_slice())
    }
    fn request_chunks(&self) -> Vec<&[u8]> {
        self.request.iter().map(Vec::as_slice).collect()
    }
    fn response_chunks(&self) -> Vec<&[u8]> {
        self.response.iter().map(Vec::as_slice).collect()
    }
    fn send_upstream(&mut self, data: &[u8], end_stream: bool) {
        self.sent_upstream.extend_from_slice(data);
        self.upstream_end_stream |= end_stream;
    }
    fn send_response(&mut self, status: u32, headers: &[(&str, &[u8])], body: &[u8]) {
        self.responses.push((
            status,
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            body.to_vec(),
        ));
    }
}

/// The messages of a captured Thrift stream (`filters/codec/testdata/thrift/<name>`), one
/// whole message (framed or unframed) each.
pub fn thrift_capture(name: &str) -> Vec<Vec<u8>> {
    use meltemi_codec::{thrift, Decoded, Limits};
    let p = format!(
        "{}/../codec/testdata/thrift/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let stream = std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mut out = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let Ok(Decoded::Frame { used, .. }) = thrift::decode_request(rest, &Limits::default())
        else {
            panic!("{p}: not a whole message at {}", stream.len() - rest.len())
        };
        out.push(rest[..used].to_vec());
        rest = &rest[used..];
    }
    out
}
