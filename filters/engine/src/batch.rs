//! A [`MetricSink`] that sums counter and gauge deltas per metric over one host hook, so an
//! adapter makes one host call per touched metric per hook instead of one per event. Sixteen
//! pipelined requests in one read were ~12 stat calls each (a host crossing each: ~0.1-0.5 us
//! in the `.wasm`); summed they are a handful per read plus the histogram values, which cannot
//! be summed and are kept in order.
//!
//! Bounded: sums live in a fixed open-addressed table of [`SLOTS`] entries (no allocation per
//! connection beyond it); when it is three-quarters full, further metrics are kept unsummed.

use crate::metrics::sink::{MetricId, MetricSink};

/// Distinct counters and gauges summed per hook.
pub const SLOTS: usize = 64;

/// One host call to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Add to a counter or gauge (the metric's kind says which; a counter's sum is never
    /// negative).
    Add(MetricId, i64),
    /// Record one histogram value.
    Record(MetricId, u64),
    /// One access log line.
    Log(&'a str),
}

/// Metric events of one hook, summed. Reused across hooks: steady state allocates nothing.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `(id + 1, sum)`; id 0 marks a free slot.
    sums: [(u32, i64); SLOTS],
    used: usize,
    /// Adds that found the table full, in order.
    spill: Vec<(MetricId, i64)>,
    records: Vec<(MetricId, u64)>,
    logs: Vec<String>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            sums: [(0, 0); SLOTS],
            used: 0,
            spill: Vec::new(),
            records: Vec::new(),
            logs: Vec::new(),
        }
    }
}

impl Batch {
    fn add(&mut self, id: MetricId, delta: i64) {
        let key = id.0.wrapping_add(1);
        if key == 0 {
            self.spill.push((id, delta));
            return;
        }
        let mut i = (key.wrapping_mul(0x9E37_79B9) >> 26) as usize % SLOTS;
        loop {
            let s = &mut self.sums[i];
            if s.0 == key {
                s.1 += delta;
                return;
            }
            if s.0 == 0 {
                if self.used * 4 >= SLOTS * 3 {
                    self.spill.push((id, delta));
                    return;
                }
                *s = (key, delta);
                self.used += 1;
                return;
            }
            i = (i + 1) % SLOTS;
        }
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.used == 0 && self.spill.is_empty() && self.records.is_empty() && self.logs.is_empty()
    }

    /// Hands every pending host call to `f` and empties the batch: summed adds (a zero sum is
    /// skipped), then histogram values in order, then log lines.
    pub fn drain(&mut self, mut f: impl FnMut(Event<'_>)) {
        if self.used > 0 {
            for s in self.sums.iter_mut() {
                if s.0 != 0 {
                    if s.1 != 0 {
                        f(Event::Add(MetricId(s.0 - 1), s.1));
                    }
                    *s = (0, 0);
                }
            }
            self.used = 0;
        }
        for (id, d) in self.spill.drain(..) {
            f(Event::Add(id, d));
        }
        for (id, v) in self.records.drain(..) {
            f(Event::Record(id, v));
        }
        for line in self.logs.drain(..) {
            f(Event::Log(&line));
        }
    }
}

impl Batch {
    /// Hands over only what cannot wait (histogram values, log lines) and keeps the summed
    /// adds: an adapter that holds counter and gauge sums across hooks (the `.wasm`, where each
    /// host call is a crossing out of the VM) drains the rest with [`Batch::drain`] later.
    pub fn drain_records(&mut self, mut f: impl FnMut(Event<'_>)) {
        for (id, v) in self.records.drain(..) {
            f(Event::Record(id, v));
        }
        for line in self.logs.drain(..) {
            f(Event::Log(&line));
        }
    }

    /// True when adds no longer fit the summing table (then holding them gains nothing).
    pub fn spilled(&self) -> bool {
        !self.spill.is_empty()
    }
}

impl MetricSink for Batch {
    #[inline]
    fn inc(&mut self, id: MetricId, delta: u64) {
        self.add(id, delta as i64);
    }
    #[inline]
    fn gauge_add(&mut self, id: MetricId, delta: i64) {
        self.add(id, delta);
    }
    #[inline]
    fn record(&mut self, id: MetricId, value: u64) {
        self.records.push((id, value));
    }
    fn access_log(&mut self, line: &str) {
        self.logs.push(line.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sums_per_metric_and_keeps_records_in_order() {
        let mut b = Batch::default();
        let mut want: HashMap<u32, i64> = HashMap::new();
        // More distinct metrics than the table holds: the rest spill, sums stay exact.
        for round in 0..3 {
            for id in 0..200u32 {
                b.inc(MetricId(id), u64::from(id) + 1);
                *want.entry(id).or_default() += i64::from(id) + 1;
                b.gauge_add(MetricId(1000 + id % 5), if round == 1 { -1 } else { 1 });
                *want.entry(1000 + id % 5).or_default() += if round == 1 { -1 } else { 1 };
            }
        }
        b.record(MetricId(7), 3);
        b.record(MetricId(7), 1);
        b.access_log("x");
        let mut got: HashMap<u32, i64> = HashMap::new();
        let mut records = Vec::new();
        let mut logs = 0;
        b.drain(|e| match e {
            Event::Add(id, d) => *got.entry(id.0).or_default() += d,
            Event::Record(id, v) => records.push((id.0, v)),
            Event::Log(_) => logs += 1,
        });
        want.retain(|_, v| *v != 0);
        assert_eq!(got, want);
        assert_eq!((records, logs), (vec![(7, 3), (7, 1)], 1));
        assert!(b.is_empty());
        let mut n = 0;
        b.drain(|_| n += 1);
        assert_eq!(n, 0, "a drained batch is empty");
    }

    #[test]
    fn records_drain_apart_from_the_held_sums() {
        let mut b = Batch::default();
        b.inc(MetricId(1), 2);
        b.record(MetricId(2), 9);
        b.access_log("line");
        let mut first = Vec::new();
        b.drain_records(|e| first.push(format!("{e:?}")));
        assert_eq!(first, ["Record(MetricId(2), 9)", "Log(\"line\")"]);
        assert!(!b.is_empty(), "the sum is still held");
        b.inc(MetricId(1), 3);
        let mut rest = Vec::new();
        b.drain(|e| rest.push(format!("{e:?}")));
        assert_eq!(rest, ["Add(MetricId(1), 5)"]);
        assert!(!b.spilled());
    }

    #[test]
    fn a_net_zero_gauge_makes_no_call() {
        let mut b = Batch::default();
        b.gauge_add(MetricId(3), 1);
        b.gauge_add(MetricId(3), -1);
        let mut n = 0;
        b.drain(|_| n += 1);
        assert_eq!(n, 0);
    }
}
