//! Pure statistics over samples: a mergeable quantile [`Sketch`] and a [`Summary`] (exact
//! aggregates plus a sketch).
//!
//! Why a sketch rather than the raw values: hourly rollups are stored as one row per metric and
//! subject, and summaries over a window (a day, a month) are built by merging those rows. The
//! sketch is DDSketch-style (Masson, Rim, Lee, VLDB 2019): logarithmic buckets give a quantile
//! within 1% *relative* error of the exact one whatever the scale (microseconds or hours), and
//! two sketches merge by adding bucket counts, so merging 720 hourly sketches answers exactly
//! what one sketch over the whole month would have.
//!
//! No I/O here; [`Sketch::to_bytes`] and [`Sketch::from_bytes`] give the BLOB the store keeps.

use std::collections::BTreeMap;

/// The guaranteed relative accuracy of [`Sketch::quantile`] (1%).
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Ratio between consecutive bucket bounds: a bucket `(γ^(i-1), γ^i]` reported at its
/// relative midpoint `2γ^i / (γ+1)` is off by at most [`RELATIVE_ACCURACY`].
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// Magnitudes below this count as zero: logarithmic buckets cannot hold 0, and values this
/// small are noise for anything measured here (seconds, bytes, counts, ratios).
pub const ZERO_THRESHOLD: f64 = 1e-9;

/// The memory bound: at most this many buckets per sign. With 1% accuracy one bucket spans a
/// factor of ~1.02, so 4,096 buckets cover ~35 decades (1e-9 to 1e26) before any collapse.
pub const MAX_BUCKETS: usize = 4096;

/// The first byte of [`Sketch::to_bytes`]; bumped on any change of layout.
const FORMAT_VERSION: u8 = 1;

/// `ln γ`, the width of one bucket in log space.
fn ln_gamma() -> f64 {
    GAMMA.ln()
}

/// The bucket of a magnitude `m >= ZERO_THRESHOLD` (finite): the `i` with `γ^(i-1) < m <= γ^i`.
fn key_of(m: f64) -> i32 {
    // m is in [1e-9, f64::MAX], so the quotient is within about ±35,500: the cast is exact.
    (m.ln() / ln_gamma()).ceil() as i32
}

/// The value reported for bucket `i`: `2γ^i / (γ+1)`, computed in log space so the top bucket
/// (which may lie past `f64::MAX`) does not overflow to infinity.
fn value_of(key: i32) -> f64 {
    let ln = f64::from(key) * ln_gamma() - ((1.0 + GAMMA) / 2.0).ln();
    ln.exp().min(f64::MAX)
}

/// The range of keys any finite value can produce; [`Sketch::from_bytes`] rejects the rest.
fn key_range() -> (i32, i32) {
    (key_of(ZERO_THRESHOLD), key_of(f64::MAX))
}

/// A mergeable quantile sketch (DDSketch with 1% relative accuracy).
///
/// Positive values and the magnitudes of negative values go to sparse logarithmic buckets
/// (`BTreeMap<key, count>`), values with `|v| < 1e-9` to a zero count. Non-finite values (NaN,
/// ±inf) are ignored and not counted: they carry no position to rank.
///
/// Memory is bounded at [`MAX_BUCKETS`] per sign: past that, the lowest-magnitude buckets are
/// collapsed into the lowest one kept. Accuracy then degrades only for the smallest magnitudes
/// (they are reported as the lowest kept bucket's value); quantiles that land in the kept
/// buckets stay within 1%. The result is order-independent, so merging still equals adding all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sketch {
    /// Buckets of positive values.
    positive: BTreeMap<i32, u64>,
    /// Buckets of the magnitudes of negative values.
    negative: BTreeMap<i32, u64>,
    zero: u64,
    /// The sum of all bucket counts and `zero`, kept so `count` is O(1).
    count: u64,
}

impl Sketch {
    pub fn new() -> Self {
        Sketch::default()
    }

    /// Adds one value (ignored when not finite).
    pub fn add(&mut self, v: f64) {
        self.add_n(v, 1);
    }

    /// Adds `n` occurrences of one value (ignored when not finite or when `n` is 0).
    pub fn add_n(&mut self, v: f64, n: u64) {
        if !v.is_finite() || n == 0 {
            return;
        }
        let m = v.abs();
        if m < ZERO_THRESHOLD {
            self.zero = self.zero.saturating_add(n);
        } else {
            let side = if v > 0.0 {
                &mut self.positive
            } else {
                &mut self.negative
            };
            let c = side.entry(key_of(m)).or_insert(0);
            *c = c.saturating_add(n);
            collapse(side);
        }
        self.count = self.count.saturating_add(n);
    }

    /// Adds everything `other` holds: afterwards `self` is what adding both inputs would give.
    pub fn merge(&mut self, other: &Sketch) {
        for (side, theirs) in [
            (&mut self.positive, &other.positive),
            (&mut self.negative, &other.negative),
        ] {
            for (&k, &n) in theirs {
                let c = side.entry(k).or_insert(0);
                *c = c.saturating_add(n);
            }
            collapse(side);
        }
        self.zero = self.zero.saturating_add(other.zero);
        self.count = self.count.saturating_add(other.count);
    }

    /// How many values were added (non-finite ones excluded).
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many buckets are held (both signs): the memory used is proportional to it.
    pub fn bucket_count(&self) -> usize {
        self.positive.len() + self.negative.len()
    }

    /// The `q`-quantile: an estimate of the value of rank `floor(q * (count - 1))` (0-based) in
    /// sorted order, within 1% relative of it (values below 1e-9 in magnitude read as 0).
    ///
    /// `q` is clamped to `[0, 1]`; `None` when the sketch is empty or `q` is NaN.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || q.is_nan() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        // (count - 1) as f64 is exact up to 2^53; the float-to-int cast saturates.
        let rank = ((q * (self.count - 1) as f64).floor() as u64).min(self.count - 1);
        let mut seen: u64 = 0;
        // Most negative first: the largest magnitudes of the negative side.
        for (&k, &n) in self.negative.iter().rev() {
            seen = seen.saturating_add(n);
            if seen > rank {
                return Some(-value_of(k));
            }
        }
        seen = seen.saturating_add(self.zero);
        if seen > rank {
            return Some(0.0);
        }
        for (&k, &n) in &self.positive {
            seen = seen.saturating_add(n);
            if seen > rank {
                return Some(value_of(k));
            }
        }
        // Only reachable when counts were saturated; the largest value is the best answer.
        self.positive
            .last_key_value()
            .map(|(&k, _)| value_of(k))
            .or(if self.zero > 0 { Some(0.0) } else { None })
            .or_else(|| self.negative.first_key_value().map(|(&k, _)| -value_of(k)))
    }

    /// The stored form: a version byte, then the zero count, then for each side (positive,
    /// negative) the number of buckets and its `(key, count)` pairs in ascending key order, all
    /// as LEB128 varints. The first key of a side is zigzag-encoded (it may be negative), the
    /// others are deltas from the previous key (>= 1), so neighbouring buckets cost one byte of
    /// key plus one to three bytes of count: a sketch over one decade (~116 buckets) is a few
    /// hundred bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.bucket_count());
        self.write_bytes(&mut out);
        out
    }

    /// Appends [`Sketch::to_bytes`]'s form to `out` (many sketches into one buffer).
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        out.reserve(4 + 4 * self.bucket_count());
        out.push(FORMAT_VERSION);
        put_varint(out, self.zero);
        for side in [&self.positive, &self.negative] {
            put_varint(out, side.len() as u64);
            let mut prev: Option<i32> = None;
            for (&k, &n) in side {
                match prev {
                    None => put_varint(out, zigzag(k)),
                    // Keys ascend strictly, so the delta is positive and fits in u64.
                    Some(p) => put_varint(out, (i64::from(k) - i64::from(p)) as u64),
                }
                put_varint(out, n);
                prev = Some(k);
            }
        }
    }

    /// Parses [`Sketch::to_bytes`] output. Never panics: garbage, truncated or hostile input
    /// (unknown version, over-long varints, more than [`MAX_BUCKETS`] buckets per side, keys
    /// out of range or not ascending, empty buckets, a total count past `u64::MAX`, trailing
    /// bytes) is an `Err` saying what is wrong and where.
    pub fn from_bytes(bytes: &[u8]) -> Result<Sketch, String> {
        let mut sides = [Vec::new(), Vec::new()];
        let (zero, count) = decode(bytes, &mut sides)?;
        let [positive, negative] = sides;
        // Keys come out ascending: the maps are built in bulk.
        Ok(Sketch {
            positive: positive.into_iter().collect(),
            negative: negative.into_iter().collect(),
            zero,
            count,
        })
    }
}

/// Parses [`Sketch::to_bytes`] output into the buckets of each side (ascending keys, into
/// `sides`, which are cleared first); the zero count and the total count.
fn decode(bytes: &[u8], sides: &mut [Vec<(i32, u64)>; 2]) -> Result<(u64, u64), String> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.byte()?;
    if version != FORMAT_VERSION {
        return Err(format!(
            "sketch: unsupported format version {version} (expected {FORMAT_VERSION})"
        ));
    }
    let zero = r.varint()?;
    let mut count = zero;
    let (lo, hi) = key_range();
    for (side, name) in sides.iter_mut().zip(["positive", "negative"]) {
        side.clear();
        let len = r.varint()?;
        if len > MAX_BUCKETS as u64 {
            return Err(format!(
                "sketch: {len} {name} buckets exceed the cap of {MAX_BUCKETS}"
            ));
        }
        let mut prev: Option<i64> = None;
        for _ in 0..len {
            let at = r.pos;
            let raw = r.varint()?;
            let key = match prev {
                None => unzigzag(raw),
                Some(p) => {
                    if raw == 0 {
                        return Err(format!(
                            "sketch: {name} bucket keys not ascending at byte {at}"
                        ));
                    }
                    // A delta past i64 is out of range anyway; saturate, then range-check.
                    p.saturating_add(i64::try_from(raw).unwrap_or(i64::MAX))
                }
            };
            let key = match i32::try_from(key) {
                Ok(k) if (lo..=hi).contains(&k) => k,
                _ => {
                    return Err(format!(
                        "sketch: {name} bucket key {key} at byte {at} outside {lo}..={hi}"
                    ))
                }
            };
            let at = r.pos;
            let n = r.varint()?;
            if n == 0 {
                return Err(format!("sketch: empty {name} bucket at byte {at}"));
            }
            count = count
                .checked_add(n)
                .ok_or_else(|| format!("sketch: total count overflows at byte {at}"))?;
            side.push((key, n));
            prev = Some(i64::from(key));
        }
    }
    if r.pos != bytes.len() {
        return Err(format!(
            "sketch: {} trailing bytes after byte {}",
            bytes.len() - r.pos,
            r.pos
        ));
    }
    Ok((zero, count))
}

/// Bucket counts over a contiguous key range, for merging many sketches fast.
#[derive(Debug, Default)]
struct Dense {
    base: i32,
    counts: Vec<u64>,
}

impl Dense {
    fn add(&mut self, key: i32, n: u64) {
        if self.counts.is_empty() {
            self.base = key;
        }
        if key < self.base {
            let grow = (self.base - key) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.base = key;
        }
        let at = (key - self.base) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] = self.counts[at].saturating_add(n);
    }

    fn into_map(self) -> BTreeMap<i32, u64> {
        let base = self.base;
        let mut map: BTreeMap<i32, u64> = self
            .counts
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .map(|(i, n)| (base + i as i32, n))
            .collect();
        collapse(&mut map);
        map
    }
}

/// Merges many serialized sketches (a month of hourly rollups) without building each one:
/// bucket counts go into dense arrays, and one [`Sketch`] is made at the end. The result
/// equals merging every decoded sketch.
#[derive(Debug, Default)]
pub struct SketchMerger {
    sides: [Dense; 2],
    zero: u64,
    count: u64,
    scratch: [Vec<(i32, u64)>; 2],
}

impl SketchMerger {
    pub fn new() -> Self {
        SketchMerger::default()
    }

    /// Adds one serialized sketch; a damaged one is an `Err` and adds nothing.
    pub fn add_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        let (zero, count) = decode(bytes, &mut self.scratch)?;
        for (dense, side) in self.sides.iter_mut().zip(&self.scratch) {
            for &(k, n) in side {
                dense.add(k, n);
            }
        }
        self.zero = self.zero.saturating_add(zero);
        self.count = self.count.saturating_add(count);
        Ok(())
    }

    pub fn finish(self) -> Sketch {
        let [positive, negative] = self.sides;
        Sketch {
            positive: positive.into_map(),
            negative: negative.into_map(),
            zero: self.zero,
            count: self.count,
        }
    }
}

/// Enforces [`MAX_BUCKETS`] by folding the lowest-magnitude buckets into the lowest one kept.
/// Which keys survive (the highest [`MAX_BUCKETS`] ever seen) and where the rest of the mass
/// goes (the lowest survivor) does not depend on the order of adds and merges.
fn collapse(side: &mut BTreeMap<i32, u64>) {
    while side.len() > MAX_BUCKETS {
        let Some((_, n)) = side.pop_first() else {
            return;
        };
        if let Some(mut lowest) = side.first_entry() {
            let c = lowest.get_mut();
            *c = c.saturating_add(n);
        }
    }
}

fn zigzag(k: i32) -> u64 {
    let k = i64::from(k);
    ((k << 1) ^ (k >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked cursor over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = self
            .buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| format!("sketch: truncated at byte {}", self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// An LEB128 u64: at most 10 bytes, the tenth holding only the top bit.
    fn varint(&mut self) -> Result<u64, String> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(format!("sketch: varint at byte {start} overflows u64"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("sketch: varint at byte {start} overflows u64"))
    }
}

/// Exact aggregates of a series plus a [`Sketch`] for its quantiles: what one hourly rollup
/// row holds, and what a summary over any window is (rollups merged).
///
/// The empty summary has `min = +inf` and `max = -inf` so that adding and merging need no
/// special case; read them through [`Summary::min`] and [`Summary::max`], which say `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Values added (non-finite ones are dropped entirely, outcome included: they would poison
    /// `sum` and the mean).
    pub count: u64,
    /// Values whose outcome was a success.
    pub ok: u64,
    /// Values whose outcome was a failure.
    pub failed: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub sketch: Sketch,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            count: 0,
            ok: 0,
            failed: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sketch: Sketch::new(),
        }
    }
}

impl Summary {
    pub fn new() -> Self {
        Summary::default()
    }

    /// Adds one sample's value and outcome (`None` for plain measurements). Dropped when the
    /// value is not finite.
    pub fn add(&mut self, value: f64, ok: Option<bool>) {
        if !value.is_finite() {
            return;
        }
        self.count = self.count.saturating_add(1);
        match ok {
            Some(true) => self.ok = self.ok.saturating_add(1),
            Some(false) => self.failed = self.failed.saturating_add(1),
            None => {}
        }
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sketch.add(value);
    }

    pub fn merge(&mut self, other: &Summary) {
        self.count = self.count.saturating_add(other.count);
        self.ok = self.ok.saturating_add(other.ok);
        self.failed = self.failed.saturating_add(other.failed);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sketch.merge(&other.sketch);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// `ok / (ok + failed)`: `None` when no value carried an outcome.
    pub fn success_rate(&self) -> Option<f64> {
        let total = self.ok.saturating_add(self.failed);
        (total > 0).then(|| self.ok as f64 / total as f64)
    }

    /// The sketch's quantile clamped to the exact `[min, max]`, which makes constant series
    /// exact; `q <= 0` and `q >= 1` are the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let v = self.sketch.quantile(q)?;
        if self.count > 0 && q <= 0.0 {
            return Some(self.min);
        }
        if self.count > 0 && q >= 1.0 {
            return Some(self.max);
        }
        // max/min rather than clamp: clamp panics if a hand-built summary has min > max.
        Some(if self.count > 0 {
            v.max(self.min).min(self.max)
        } else {
            v
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merger_equals_merging_every_sketch() {
        let mut sketches = Vec::new();
        for i in 0..50u32 {
            let mut s = Sketch::new();
            for j in 0..200u32 {
                let v = f64::from(i * 200 + j) * 0.37 - 300.0;
                s.add(v);
            }
            s.add(0.0);
            sketches.push(s);
        }
        let mut merged = Sketch::new();
        let mut merger = SketchMerger::new();
        for s in &sketches {
            merged.merge(s);
            assert!(merger.add_bytes(&s.to_bytes()).is_ok());
        }
        assert!(merger.add_bytes(&[9, 9, 9]).is_err());
        assert_eq!(merger.finish(), merged);
    }

    const QS: &[f64] = &[
        0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0,
    ];

    /// The definition [`Sketch::quantile`] approximates.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }

    fn sketch_of(values: &[f64]) -> Sketch {
        let mut s = Sketch::new();
        for &v in values {
            s.add(v);
        }
        s
    }

    /// Asserts every quantile in [`QS`] is within 1% relative of the exact one (plus the zero
    /// threshold, below which values read as 0, and a hair of float rounding at bucket bounds).
    fn assert_accurate(values: &[f64]) {
        let s = sketch_of(values);
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(s.count(), values.len() as u64);
        for &q in QS {
            let want = exact(&sorted, q);
            let got = s.quantile(q).expect("non-empty");
            let tol = RELATIVE_ACCURACY * want.abs() * (1.0 + 1e-9) + ZERO_THRESHOLD;
            assert!(
                (got - want).abs() <= tol,
                "q={q}: got {got}, exact {want}, off by {:.4}%",
                100.0 * (got - want).abs() / want.abs()
            );
        }
    }

    fn rng() -> fastrand::Rng {
        fastrand::Rng::with_seed(0x5eed)
    }

    #[test]
    fn quantiles_of_uniform_data_are_within_one_percent() {
        assert_accurate(&(1..=10_000).map(f64::from).collect::<Vec<_>>());
        let mut r = rng();
        assert_accurate(
            &(0..50_000)
                .map(|_| 0.001 + r.f64() * 1000.0)
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn quantiles_of_exponential_like_data_are_within_one_percent() {
        let mut r = rng();
        // Inverse-CDF exponential with mean 0.2 (s): a long tail like request durations.
        let values: Vec<f64> = (0..100_000).map(|_| -(1.0 - r.f64()).ln() * 0.2).collect();
        assert_accurate(&values);
        // And a log-normal-ish spread over six decades.
        let values: Vec<f64> = (0..100_000)
            .map(|_| 10f64.powf(r.f64() * 6.0 - 3.0))
            .collect();
        assert_accurate(&values);
    }

    #[test]
    fn quantiles_of_constant_and_single_values() {
        assert_accurate(&[42.0; 1000]);
        assert_accurate(&[0.125]);
        assert_accurate(&[f64::MAX]);
        assert_accurate(&[-f64::MAX, f64::MAX]);
        assert_accurate(&[ZERO_THRESHOLD]);
        let mut s = Summary::new();
        for _ in 0..1000 {
            s.add(42.0, None);
        }
        for &q in QS {
            assert_eq!(s.quantile(q), Some(42.0), "summary clamps to [min, max]");
        }
    }

    #[test]
    fn quantiles_of_negative_and_mixed_sign_data() {
        assert_accurate(&(1..=1000).map(|i| -f64::from(i)).collect::<Vec<_>>());
        assert_accurate(
            &(-500..=500)
                .map(|i| f64::from(i) * 0.37)
                .collect::<Vec<_>>(),
        );
        let mut r = rng();
        assert_accurate(
            &(0..20_000)
                .map(|_| (r.f64() - 0.3) * 1e6)
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn zeros_and_tiny_values_read_as_zero() {
        assert_accurate(&[0.0; 100]);
        let s = sketch_of(&[0.0, -0.0, 1e-12, -1e-10]);
        assert_eq!(s.count(), 4);
        assert_eq!(s.bucket_count(), 0);
        assert_eq!(s.quantile(0.5), Some(0.0));
        let mut values = vec![0.0; 50];
        values.extend((1..=50).map(f64::from));
        assert_accurate(&values);
        let s = sketch_of(&values);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.quantile(0.49), Some(0.0));
        assert!(s.quantile(0.51).is_some_and(|v| v > 0.9));
    }

    #[test]
    fn empty_non_finite_and_out_of_range_q() {
        let mut s = Sketch::new();
        assert!(s.is_empty());
        assert_eq!(s.quantile(0.5), None);
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -f64::NAN] {
            s.add(v);
            s.add_n(v, 7);
        }
        assert!(s.is_empty());
        assert_eq!(s, Sketch::new());
        s.add_n(3.0, 0);
        assert!(s.is_empty());
        s.add(3.0);
        s.add(5.0);
        assert_eq!(s.quantile(-1.0), s.quantile(0.0));
        assert_eq!(s.quantile(2.0), s.quantile(1.0));
        assert_eq!(s.quantile(f64::NEG_INFINITY), s.quantile(0.0));
        assert_eq!(s.quantile(f64::NAN), None);
    }

    #[test]
    fn add_n_equals_repeated_add() {
        let mut a = Sketch::new();
        let mut b = Sketch::new();
        for (v, n) in [(1.5, 3), (-2.0, 2), (0.0, 4), (1e6, 1)] {
            a.add_n(v, n);
            for _ in 0..n {
                b.add(v);
            }
        }
        assert_eq!(a, b);
        assert_eq!(a.count(), 10);
    }

    #[test]
    fn merge_equals_adding_all() {
        let mut r = rng();
        let values: Vec<f64> = (0..30_000)
            .map(|i| match i % 5 {
                0 => 0.0,
                1 => -r.f64() * 100.0,
                _ => 10f64.powf(r.f64() * 8.0 - 4.0),
            })
            .collect();
        let all = sketch_of(&values);
        let mut merged = Sketch::new();
        for chunk in values.chunks(997) {
            merged.merge(&sketch_of(chunk));
        }
        assert_eq!(merged, all);
        // Merging into an empty sketch and merging an empty one are identities.
        let mut e = Sketch::new();
        e.merge(&all);
        e.merge(&Sketch::new());
        assert_eq!(e, all);
    }

    #[test]
    fn merge_equals_adding_all_even_when_collapsing() {
        // 60 decades of positive values: far more than MAX_BUCKETS buckets.
        let values: Vec<f64> = (0..20_000)
            .map(|i| 10f64.powf(-9.0 + 60.0 * f64::from(i) / 20_000.0))
            .collect();
        let all = sketch_of(&values);
        let mut reversed = Sketch::new();
        for &v in values.iter().rev() {
            reversed.add(v);
        }
        let mut merged = Sketch::new();
        for chunk in values.chunks(3001).rev() {
            merged.merge(&sketch_of(chunk));
        }
        assert_eq!(all.positive.len(), MAX_BUCKETS);
        assert_eq!(reversed, all);
        assert_eq!(merged, all);
    }

    #[test]
    fn summary_merge_equals_adding_all() {
        let mut r = rng();
        let samples: Vec<(f64, Option<bool>)> = (0..5000)
            .map(|i| {
                let ok = match i % 3 {
                    0 => None,
                    1 => Some(true),
                    _ => Some(r.bool()),
                };
                (r.f64() * 10.0 - 1.0, ok)
            })
            .collect();
        let mut all = Summary::new();
        for &(v, ok) in &samples {
            all.add(v, ok);
        }
        let mut merged = Summary::new();
        for chunk in samples.chunks(333) {
            let mut part = Summary::new();
            for &(v, ok) in chunk {
                part.add(v, ok);
            }
            merged.merge(&part);
        }
        assert_eq!(merged.count, all.count);
        assert_eq!(merged.ok, all.ok);
        assert_eq!(merged.failed, all.failed);
        assert_eq!(merged.min(), all.min());
        assert_eq!(merged.max(), all.max());
        assert_eq!(merged.sketch, all.sketch);
        // The sum differs only by float association.
        assert!((merged.sum - all.sum).abs() <= 1e-9 * all.sum.abs());
    }

    #[test]
    fn summary_aggregates() {
        let mut s = Summary::default();
        assert_eq!(
            (s.min(), s.max(), s.mean(), s.success_rate()),
            (None, None, None, None)
        );
        assert_eq!(s.quantile(0.5), None);
        s.add(2.0, Some(true));
        s.add(4.0, Some(true));
        s.add(9.0, Some(false));
        s.add(-3.0, None);
        s.add(f64::NAN, Some(false));
        s.add(f64::INFINITY, Some(true));
        assert_eq!(s.count, 4);
        assert_eq!((s.ok, s.failed), (2, 1));
        assert_eq!(s.min(), Some(-3.0));
        assert_eq!(s.max(), Some(9.0));
        assert_eq!(s.mean(), Some(3.0));
        assert_eq!(s.success_rate(), Some(2.0 / 3.0));
        assert_eq!(s.quantile(0.0), Some(-3.0));
        assert_eq!(s.quantile(1.0), Some(9.0));
        let mut m = Summary::new();
        m.merge(&s);
        assert_eq!(m, s);
        // Only plain measurements: no success rate.
        let mut p = Summary::new();
        p.add(1.0, None);
        assert_eq!(p.success_rate(), None);
        // A hand-built inconsistent summary must not panic.
        let weird = Summary {
            count: 1,
            min: 5.0,
            max: 1.0,
            sketch: sketch_of(&[3.0]),
            ..Summary::default()
        };
        assert!(weird.quantile(0.5).is_some());
    }

    #[test]
    fn bytes_round_trip() {
        let mut r = rng();
        let mut mixed = sketch_of(
            &(0..10_000)
                .map(|_| (r.f64() - 0.5) * 1e4)
                .collect::<Vec<_>>(),
        );
        mixed.add_n(0.0, 12);
        mixed.add_n(7.0, u64::MAX / 2);
        let collapsed = sketch_of(
            &(0..10_000)
                .map(|i| 10f64.powf(-9.0 + 0.03 * f64::from(i)))
                .collect::<Vec<_>>(),
        );
        for s in [
            Sketch::new(),
            sketch_of(&[0.0]),
            sketch_of(&[1.0]),
            sketch_of(&[-1.0]),
            sketch_of(&[f64::MAX, -f64::MAX, ZERO_THRESHOLD, -ZERO_THRESHOLD]),
            mixed,
            collapsed,
        ] {
            let bytes = s.to_bytes();
            assert_eq!(Sketch::from_bytes(&bytes), Ok(s.clone()));
            assert_eq!(bytes[0], FORMAT_VERSION);
        }
    }

    #[test]
    fn an_hour_over_one_decade_is_small() {
        let mut r = rng();
        // 100,000 durations between 10 ms and 100 ms.
        let s = sketch_of(
            &(0..100_000)
                .map(|_| 0.01 * 10f64.powf(r.f64()))
                .collect::<Vec<_>>(),
        );
        let len = s.to_bytes().len();
        assert!(len < 1024, "{len} bytes for {} buckets", s.bucket_count());
    }

    #[test]
    fn garbage_and_hostile_bytes_are_errors() {
        let good = sketch_of(&[1.0, 2.0, -3.0, 0.0, 1e9]).to_bytes();
        // Every proper prefix is truncated (the format is self-delimiting).
        for end in 0..good.len() {
            let e = Sketch::from_bytes(&good[..end]).expect_err("prefix");
            assert!(e.contains("truncated"), "{e}");
        }
        let err = |bytes: &[u8], what: &str| {
            let e = Sketch::from_bytes(bytes).expect_err(what);
            assert!(e.contains(what), "{e} (wanted {what})");
        };
        err(&[], "truncated");
        err(&[9, 0, 0, 0], "version");
        err(&[FORMAT_VERSION, 0, 0, 0, 0], "trailing");
        // A bucket count that would allocate the world.
        let mut huge = vec![FORMAT_VERSION, 0];
        put_varint(&mut huge, u64::MAX);
        err(&huge, "cap");
        let mut over = vec![FORMAT_VERSION, 0];
        put_varint(&mut over, MAX_BUCKETS as u64 + 1);
        err(&over, "cap");
        // Over-long varints.
        err(
            &[
                FORMAT_VERSION,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x02,
            ],
            "overflows",
        );
        err(
            &[
                FORMAT_VERSION,
                0x80,
                0x80,
                0x80,
                0x80,
                0x80,
                0x80,
                0x80,
                0x80,
                0x80,
                0x80,
                0x00,
            ],
            "overflows",
        );
        // Keys out of range, not ascending, an empty bucket, a count past u64::MAX.
        let mut bytes = vec![FORMAT_VERSION, 0, 1];
        put_varint(&mut bytes, zigzag(i32::MAX));
        bytes.extend([1, 0]);
        err(&bytes, "outside");
        let mut bytes = vec![FORMAT_VERSION, 0, 2, 0, 1];
        put_varint(&mut bytes, u64::MAX);
        bytes.extend([1, 0]);
        err(&bytes, "outside");
        err(&[FORMAT_VERSION, 0, 2, 0, 1, 0, 1, 0], "ascending");
        err(&[FORMAT_VERSION, 0, 1, 0, 0, 0], "empty");
        let mut bytes = vec![FORMAT_VERSION, 0, 2, 0];
        put_varint(&mut bytes, u64::MAX);
        bytes.push(1);
        put_varint(&mut bytes, 1);
        bytes.push(0);
        err(&bytes, "total count overflows");
        let mut bytes = vec![FORMAT_VERSION];
        put_varint(&mut bytes, u64::MAX);
        bytes.extend([1, 0, 1, 0]);
        err(&bytes, "total count overflows");
        // Random bytes never panic, and whatever parses round-trips.
        let mut r = rng();
        for _ in 0..20_000 {
            let len = r.usize(0..40);
            let mut bytes: Vec<u8> = (0..len).map(|_| r.u8(..)).collect();
            if r.bool() && !bytes.is_empty() {
                bytes[0] = FORMAT_VERSION;
            }
            if let Ok(s) = Sketch::from_bytes(&bytes) {
                assert_eq!(Sketch::from_bytes(&s.to_bytes()), Ok(s));
            }
        }
    }

    #[test]
    fn memory_is_bounded() {
        // 1e-9 to 1e18 fits (27 decades, ~3,100 buckets a side): no collapse, all accurate.
        let values: Vec<f64> = (0..200_000)
            .map(|i| {
                let m = 10f64.powf(-9.0 + 27.0 * f64::from(i) / 200_000.0);
                if i % 2 == 0 {
                    m
                } else {
                    -m
                }
            })
            .collect();
        let s = sketch_of(&values);
        assert!(s.positive.len() <= MAX_BUCKETS && s.negative.len() <= MAX_BUCKETS);
        assert_accurate(&values);
        // 1e-9 to 1e300 must collapse: the bound holds, the count is kept, and quantiles in
        // the kept (upper) buckets are still accurate.
        let values: Vec<f64> = (0..200_000)
            .map(|i| 10f64.powf(-9.0 + 309.0 * f64::from(i) / 200_000.0))
            .collect();
        let s = sketch_of(&values);
        assert_eq!(s.positive.len(), MAX_BUCKETS);
        assert_eq!(s.count(), 200_000);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        // The kept 4,096 buckets span ~35 decades (1e265..1e300): the top ~11% of this data.
        for q in [0.9, 0.95, 0.99, 1.0] {
            let (got, want) = (s.quantile(q).unwrap_or(f64::NAN), exact(&sorted, q));
            assert!((got - want).abs() <= 0.01 * want * (1.0 + 1e-9), "q={q}");
        }
        // The smallest values are the ones that degrade: they read as the lowest kept bucket.
        assert!(s.quantile(0.0).is_some_and(|v| v > 1e-9 * 100.0));
    }

    #[test]
    fn a_million_adds_and_720_merges_run() {
        let mut r = rng();
        let mut big = Sketch::new();
        for _ in 0..1_000_000 {
            big.add(r.f64() * 1e3);
        }
        assert_eq!(big.count(), 1_000_000);
        // A month of hourly sketches merged into one, as a 30-day summary does.
        let hourly: Vec<Sketch> = (0..720)
            .map(|h| {
                let mut s = Sketch::new();
                for _ in 0..500 {
                    s.add(0.001 * (1.0 + f64::from(h % 24)) * (1.0 + r.f64()));
                }
                s
            })
            .collect();
        let mut month = Sketch::new();
        for s in &hourly {
            month.merge(&Sketch::from_bytes(&s.to_bytes()).expect("round trip"));
        }
        assert_eq!(month.count(), 720 * 500);
        assert!(month.quantile(0.99).is_some());
    }
}
