//! Per-series online anomaly detectors: a z-score over a sliding window and an EWMA.
//!
//! One series is one metric and subject; the caller keeps a map of [`Detector`]s and feeds each
//! sample's value in order. The two methods complement each other: the windowed z-score
//! remembers the last `window` values equally, so it keeps flagging for a while after a level
//! shift (the shift *is* unusual against that history), while the EWMA forgets geometrically
//! and adapts within a few samples, so it flags the shift itself and then settles.
//!
//! Both score a value against the state *before* it is added, so a spike cannot dilute its own
//! score, and both floor the standard deviation at `max(1% of |mean|, 1e-12)`: a constant
//! series has sd 0, and without the floor the last bits of float noise would score as infinite
//! while a real jump could not be told apart from them.
//!
//! No I/O and no clock: the caller passes the time, which keeps the rate limit testable.

use std::collections::VecDeque;
use std::fmt;

/// The largest window [`DetectorConfig::validate`] accepts: a ring holds `window` f64s per
/// series, and the caller keeps one per metric and subject.
pub const MAX_WINDOW: usize = 100_000;

/// Which detector produced a [`Score`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    ZScore,
    Ewma,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ZScore => "zscore",
            Method::Ewma => "ewma",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flagged value: how far it was from what was expected, in standard deviations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub method: Method,
    /// `(x - expected) / spread`: positive above the expectation, negative below.
    pub score: f64,
    /// The mean the value was compared with.
    pub expected: f64,
    /// The standard deviation used (after the floor).
    pub spread: f64,
}

/// The sd floor: `max(sd, 1% of |mean|, 1e-12)` (NaN-safe: `f64::max` ignores a NaN operand).
fn floored(sd: f64, mean: f64) -> f64 {
    sd.max(0.01 * mean.abs()).max(1e-12)
}

/// Scores `x` against `mean` and `sd`; `Some` only when it is past `threshold`. A NaN score
/// (from a state that overflowed) compares false and is never flagged.
fn flag(method: Method, x: f64, mean: f64, sd: f64, threshold: f64) -> Option<Score> {
    let spread = floored(sd, mean);
    let score = (x - mean) / spread;
    (score.abs() > threshold).then_some(Score {
        method,
        score,
        expected: mean,
        spread,
    })
}

/// Z-score of each value against the last `window` values (sample mean and sd).
///
/// The running sums are of `x - shift`, with `shift` re-centred on the window's mean at every
/// exact recomputation: summing squares of raw values near 1e9 would cancel catastrophically.
/// The sums are recomputed exactly from the ring every `window` observations (and at once if
/// they stop being finite), so float drift from adding and removing stays bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct ZScore {
    window: usize,
    min_samples: usize,
    threshold: f64,
    ring: VecDeque<f64>,
    shift: f64,
    sum: f64,
    sum_sq: f64,
    since_recompute: usize,
}

impl Default for ZScore {
    fn default() -> Self {
        ZScore::new(100, 10, 2.0)
    }
}

impl ZScore {
    /// Never fails: `window` is clamped to `2..=MAX_WINDOW` and `min_samples` to
    /// `2..=window` (one value has no spread); [`DetectorConfig::validate`] reports bad values
    /// before they get here. A NaN threshold never flags.
    pub fn new(window: usize, min_samples: usize, threshold: f64) -> Self {
        let window = window.clamp(2, MAX_WINDOW);
        ZScore {
            window,
            min_samples: min_samples.clamp(2, window),
            threshold,
            ring: VecDeque::new(),
            shift: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
            since_recompute: 0,
        }
    }

    /// How many values the window holds now (at most `window`).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The window's mean and sample sd (before the floor); `None` below two values.
    pub fn mean_sd(&self) -> Option<(f64, f64)> {
        let n = self.ring.len();
        if n < 2 {
            return None;
        }
        let n = n as f64;
        let mean_d = self.sum / n;
        let var = ((self.sum_sq - self.sum * mean_d) / (n - 1.0)).max(0.0);
        Some((self.shift + mean_d, var.sqrt()))
    }

    /// Scores `x` against the window (once it holds `min_samples` values), then adds it.
    /// `Some` when `|x - mean| / sd > threshold`. Non-finite `x` is ignored.
    pub fn observe(&mut self, x: f64) -> Option<Score> {
        if !x.is_finite() {
            return None;
        }
        let scored = if self.ring.len() >= self.min_samples {
            self.mean_sd()
                .and_then(|(mean, sd)| flag(Method::ZScore, x, mean, sd, self.threshold))
        } else {
            None
        };
        if self.ring.is_empty() {
            self.shift = x;
        }
        if self.ring.len() >= self.window {
            if let Some(old) = self.ring.pop_front() {
                let d = old - self.shift;
                self.sum -= d;
                self.sum_sq -= d * d;
            }
        }
        self.ring.push_back(x);
        let d = x - self.shift;
        self.sum += d;
        self.sum_sq += d * d;
        self.since_recompute += 1;
        if self.since_recompute >= self.window || !self.sum.is_finite() || !self.sum_sq.is_finite()
        {
            self.recompute();
        }
        scored
    }

    /// Exact sums from the ring, re-centred on its mean (computed as a sum of `v / n` so that
    /// values near `f64::MAX` do not overflow it).
    fn recompute(&mut self) {
        self.since_recompute = 0;
        let n = self.ring.len() as f64;
        let mean: f64 = self.ring.iter().map(|v| v / n).sum();
        self.shift = if mean.is_finite() { mean } else { 0.0 };
        self.sum = 0.0;
        self.sum_sq = 0.0;
        for v in &self.ring {
            let d = v - self.shift;
            self.sum += d;
            self.sum_sq += d * d;
        }
    }
}

/// Exponentially weighted mean and variance (Finch 2009, "Incremental calculation of weighted
/// mean and variance", after West 1979): `diff = x - mean; mean += α·diff;
/// var = (1 - α)·(var + α·diff²)`. O(1) memory, and a level shift is absorbed in a few samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Ewma {
    alpha: f64,
    threshold: f64,
    min_samples: usize,
    n: u64,
    mean: f64,
    var: f64,
}

impl Default for Ewma {
    fn default() -> Self {
        Ewma::new(0.3, 3.0, 10)
    }
}

impl Ewma {
    /// Never fails: an `alpha` outside `(0, 1]` (or NaN) becomes the default 0.3 and
    /// `min_samples` is at least 2; [`DetectorConfig::validate`] reports bad values first.
    pub fn new(alpha: f64, threshold: f64, min_samples: usize) -> Self {
        Ewma {
            alpha: if alpha > 0.0 && alpha <= 1.0 {
                alpha
            } else {
                0.3
            },
            threshold,
            min_samples: min_samples.max(2),
            n: 0,
            mean: 0.0,
            var: 0.0,
        }
    }

    /// Observations folded in so far (since the last reset).
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The weighted mean and sd (before the floor); `None` before the first value.
    pub fn mean_sd(&self) -> Option<(f64, f64)> {
        (self.n > 0).then(|| (self.mean, self.var.max(0.0).sqrt()))
    }

    /// Scores `x` against the state (once `min_samples` values are in), then folds it in.
    /// `Some` when `|x - mean| / sd > threshold`. Non-finite `x` is ignored; a state that
    /// overflowed (values near `f64::MAX`) starts over rather than staying NaN forever.
    pub fn observe(&mut self, x: f64) -> Option<Score> {
        if !x.is_finite() {
            return None;
        }
        let scored = if self.n >= self.min_samples as u64 {
            flag(
                Method::Ewma,
                x,
                self.mean,
                self.var.max(0.0).sqrt(),
                self.threshold,
            )
        } else {
            None
        };
        if self.n == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let diff = x - self.mean;
            let incr = self.alpha * diff;
            self.mean += incr;
            self.var = (1.0 - self.alpha) * (self.var + diff * incr);
        }
        self.n = self.n.saturating_add(1);
        if !self.mean.is_finite() || !self.var.is_finite() {
            self.n = 0;
            self.mean = 0.0;
            self.var = 0.0;
        }
        scored
    }
}

/// The settings of every series' [`Detector`].
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Values the z-score compares with (default 100).
    pub window: usize,
    /// Values both methods need before they score (default 10).
    pub min_samples: usize,
    /// Standard deviations past which the z-score flags (default 2.0).
    pub zscore_threshold: f64,
    /// The EWMA's weight of the newest value (default 0.1: ~20 samples of memory; with 0.3 the
    /// EW variance rests on ~6 samples and flags ~4% of Gaussian noise at threshold 3, with 0.1
    /// about 1%).
    pub ewma_alpha: f64,
    /// Standard deviations past which the EWMA flags (default 3.0).
    pub ewma_threshold: f64,
    /// At most one report per series per this many ms (default 60,000); 0 reports every one.
    pub min_gap_ms: i64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            window: 100,
            min_samples: 10,
            zscore_threshold: 2.0,
            ewma_alpha: 0.1,
            ewma_threshold: 3.0,
            min_gap_ms: 60_000,
        }
    }
}

impl DetectorConfig {
    /// Whether the settings make sense; the error names the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=MAX_WINDOW).contains(&self.window) {
            return Err(format!(
                "window must be 2 to {MAX_WINDOW} (got {})",
                self.window
            ));
        }
        if !(2..=self.window).contains(&self.min_samples) {
            return Err(format!(
                "min_samples must be 2 to window ({}) (got {})",
                self.window, self.min_samples
            ));
        }
        for (name, t) in [
            ("zscore_threshold", self.zscore_threshold),
            ("ewma_threshold", self.ewma_threshold),
        ] {
            if !(t.is_finite() && t > 0.0) {
                return Err(format!("{name} must be finite and > 0 (got {t})"));
            }
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return Err(format!(
                "ewma_alpha must be in (0, 1] (got {})",
                self.ewma_alpha
            ));
        }
        if self.min_gap_ms < 0 {
            return Err(format!("min_gap_ms must be >= 0 (got {})", self.min_gap_ms));
        }
        Ok(())
    }
}

/// What [`Detector::observe`] reports: the methods that flagged the value (one or both), and
/// how many flagged values of this series were suppressed by the rate limit since the previous
/// report (so the alert can say "and N more").
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub scores: Vec<Score>,
    pub suppressed_before: u64,
}

/// Both detectors of one series plus its rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    zscore: ZScore,
    ewma: Ewma,
    last_reported_ms: Option<i64>,
    suppressed: u64,
    min_gap_ms: i64,
}

impl Detector {
    /// Never fails (see [`ZScore::new`] and [`Ewma::new`] for how bad values are clamped; a
    /// negative `min_gap_ms` acts as 0). Call [`DetectorConfig::validate`] first.
    pub fn new(config: &DetectorConfig) -> Self {
        Detector {
            zscore: ZScore::new(config.window, config.min_samples, config.zscore_threshold),
            ewma: Ewma::new(config.ewma_alpha, config.ewma_threshold, config.min_samples),
            last_reported_ms: None,
            suppressed: 0,
            min_gap_ms: config.min_gap_ms.max(0),
        }
    }

    /// Feeds one value observed at `now_ms` (Unix ms) to both methods (always: the state keeps
    /// learning while reports are suppressed).
    ///
    /// `Some(report)` when at least one method flagged it and the series has not reported in
    /// the last `min_gap_ms`; a flagged value inside the gap is counted and returned as
    /// `suppressed_before` with the next report. `None` otherwise, and for non-finite `x`
    /// (ignored). If the clock went back before the last report, the gap counts as elapsed,
    /// so a clock step cannot silence a series.
    pub fn observe(&mut self, x: f64, now_ms: i64) -> Option<Report> {
        if !x.is_finite() {
            return None;
        }
        let scores: Vec<Score> = [self.zscore.observe(x), self.ewma.observe(x)]
            .into_iter()
            .flatten()
            .collect();
        if scores.is_empty() {
            return None;
        }
        if let Some(last) = self.last_reported_ms {
            let elapsed = now_ms.saturating_sub(last);
            if (0..self.min_gap_ms).contains(&elapsed) {
                self.suppressed = self.suppressed.saturating_add(1);
                return None;
            }
        }
        self.last_reported_ms = Some(now_ms);
        Some(Report {
            scores,
            suppressed_before: std::mem::take(&mut self.suppressed),
        })
    }

    pub fn zscore(&self) -> &ZScore {
        &self.zscore
    }

    pub fn ewma(&self) -> &Ewma {
        &self.ewma
    }

    /// When this series last reported (Unix ms).
    pub fn last_reported_ms(&self) -> Option<i64> {
        self.last_reported_ms
    }

    /// Flagged values suppressed since the last report.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform noise in [-1, 1) around `level`, reproducible.
    fn noisy(rng: &mut fastrand::Rng, level: f64, amplitude: f64) -> f64 {
        level + amplitude * (2.0 * rng.f64() - 1.0)
    }

    fn strict() -> DetectorConfig {
        DetectorConfig {
            zscore_threshold: 3.0,
            min_gap_ms: 0,
            ..DetectorConfig::default()
        }
    }

    /// [`strict`] with a slower EWMA. With the default α = 0.3 the EW variance rests on ~6
    /// samples and sits below the variance of `x - mean` (E[var] = 2(1-α)/(2-α)·σ² against
    /// 2/(2-α)·σ²), so threshold 3 flags roughly 2% of uniform and 4% of Gaussian noise; the
    /// rate limit is what keeps that quiet. α = 0.05 (~0.0005% on uniform noise) makes
    /// "nothing before the spike" hold on noise rather than on a lucky seed.
    fn steady() -> DetectorConfig {
        DetectorConfig {
            ewma_alpha: 0.05,
            ..strict()
        }
    }

    #[test]
    fn a_spike_in_a_steady_noisy_series_is_flagged_by_both() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut d = Detector::new(&steady());
        // Level 10, noise ±1 (sd 0.58, above the 1% floor of 0.1).
        for i in 0..300 {
            let x = noisy(&mut rng, 10.0, 1.0);
            assert_eq!(d.observe(x, i * 1000), None, "false alarm at {i} ({x})");
        }
        let report = d.observe(20.0, 300_000).expect("the spike is flagged");
        assert_eq!(report.suppressed_before, 0);
        let methods: Vec<Method> = report.scores.iter().map(|s| s.method).collect();
        assert_eq!(methods, [Method::ZScore, Method::Ewma]);
        for s in &report.scores {
            assert!(s.score > 3.0, "{s:?}");
            assert!((s.expected - 10.0).abs() < 1.0, "{s:?}");
            assert!(s.spread > 0.2 && s.spread < 1.0, "{s:?}");
        }
        // Uniform noise of amplitude 1 has sd 1/sqrt(3).
        let z = report.scores[0];
        assert!((z.spread - 3f64.sqrt().recip()).abs() < 0.1, "{z:?}");
        // A dip is flagged too, with a negative score.
        for i in 0..50 {
            d.observe(noisy(&mut rng, 10.0, 1.0), 400_000 + i);
        }
        let dip = d.observe(0.0, 500_000).expect("the dip is flagged");
        assert!(dip.scores.iter().all(|s| s.score < -3.0), "{dip:?}");
    }

    #[test]
    fn ewma_adapts_to_a_level_shift_and_the_window_remembers() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut z = ZScore::new(100, 10, 3.0);
        let mut e = Ewma::default();
        for _ in 0..200 {
            let x = noisy(&mut rng, 10.0, 0.2);
            assert!(z.observe(x).is_none() && e.observe(x).is_none());
        }
        let (mut z_flags, mut e_flags) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let x = noisy(&mut rng, 20.0, 0.2);
            if z.observe(x).is_some() {
                z_flags.push(i);
            }
            if e.observe(x).is_some() {
                e_flags.push(i);
            }
        }
        assert_eq!(e_flags.first(), Some(&0), "the EWMA flags the shift");
        assert!(
            e_flags.iter().all(|&i| i < 5),
            "then settles within a few samples: {e_flags:?}"
        );
        assert_eq!(z_flags.first(), Some(&0), "the z-score flags the shift");
        assert!(
            z_flags.len() > e_flags.len(),
            "the window keeps the old level for a while: {z_flags:?}"
        );
        assert!(
            z_flags.iter().all(|&i| i < 100),
            "and forgets it once it is out of the window: {z_flags:?}"
        );
        let (mean, _) = e.mean_sd().expect("state");
        assert!((mean - 20.0).abs() < 0.3);
    }

    #[test]
    fn nothing_is_flagged_during_warm_up() {
        let config = DetectorConfig {
            min_gap_ms: 0,
            ..DetectorConfig::default()
        };
        // Wild values during the first min_samples observations: nothing to compare with yet.
        let mut d = Detector::new(&config);
        for (i, x) in [1.0, 1e6, -5.0, 1e9, 0.0, 3.0, 1e6, 7.0, -1e9, 2.0]
            .into_iter()
            .enumerate()
        {
            assert_eq!(d.observe(x, i as i64), None, "at {i}");
        }
        // Exactly min_samples constant values, then a jump: flagged by both on the next one.
        let mut d = Detector::new(&config);
        for i in 0..10 {
            assert_eq!(d.observe(5.0, i), None);
        }
        let r = d.observe(50.0, 10).expect("scored after min_samples");
        assert_eq!(r.scores.len(), 2);
        // With one fewer, the same jump is not scored.
        let mut d = Detector::new(&config);
        for i in 0..9 {
            d.observe(5.0, i);
        }
        assert_eq!(d.observe(50.0, 9), None);
    }

    #[test]
    fn a_constant_series_ignores_float_noise_but_flags_a_jump() {
        let mut d = Detector::new(&strict());
        for i in 0..50 {
            let x = if i % 2 == 0 { 5.0 } else { 5.0 + 1e-13 };
            assert_eq!(d.observe(x, i), None, "float noise at {i}");
        }
        // 0.9% off a constant 5.0 is within the floor (1% of the mean = 0.05): z = 0.9.
        assert_eq!(d.clone().observe(5.045, 50), None);
        let r = d.observe(5.5, 50).expect("a 10% jump is flagged");
        for s in &r.scores {
            assert!((s.spread - 0.05).abs() < 1e-9, "{s:?}");
            assert!((s.score - 10.0).abs() < 1e-6, "{s:?}");
        }
        assert_eq!(r.scores.len(), 2);
        // Around zero the floor is 1e-12: any real change is flagged.
        let mut d = Detector::new(&strict());
        for i in 0..20 {
            assert_eq!(d.observe(0.0, i), None);
        }
        assert!(d.observe(1e-6, 20).is_some());
    }

    #[test]
    fn reports_are_rate_limited_per_series() {
        let config = DetectorConfig {
            window: 20,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(&config);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut t = 0;
        // A baseline long enough for both methods to forget the previous spike, then a spike.
        let mut spike = |d: &mut Detector, t: &mut i64, at: i64| {
            for _ in 0..40 {
                *t += 1;
                assert_eq!(
                    d.observe(noisy(&mut rng, 10.0, 0.1), (*t).min(at - 1)),
                    None
                );
            }
            d.observe(1000.0, at)
        };
        let r = spike(&mut d, &mut t, 1_000_000).expect("first report");
        assert_eq!(r.suppressed_before, 0);
        assert_eq!(d.last_reported_ms(), Some(1_000_000));
        t = 1_000_000;
        assert_eq!(spike(&mut d, &mut t, 1_010_000), None);
        t = 1_010_000;
        assert_eq!(spike(&mut d, &mut t, 1_059_999), None);
        assert_eq!(d.suppressed(), 2);
        t = 1_059_999;
        let r = spike(&mut d, &mut t, 1_060_000).expect("the gap has passed");
        assert_eq!(r.suppressed_before, 2);
        assert_eq!(d.suppressed(), 0);
        assert_eq!(d.last_reported_ms(), Some(1_060_000));
        // A clock stepped back does not silence the series.
        t = 0;
        let r = spike(&mut d, &mut t, 5_000).expect("clock went back");
        assert_eq!(r.suppressed_before, 0);
        // min_gap_ms 0 reports every flagged value.
        let mut d = Detector::new(&DetectorConfig {
            min_gap_ms: 0,
            ..config
        });
        t = 0;
        assert!(spike(&mut d, &mut t, 100).is_some());
        t = 100;
        assert!(spike(&mut d, &mut t, 200).is_some());
    }

    #[test]
    fn non_finite_input_is_ignored() {
        let mut d = Detector::new(&strict());
        for i in 0..20 {
            d.observe(f64::from(i % 3), i64::from(i));
        }
        let before = d.clone();
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(d.observe(x, 100), None);
        }
        assert_eq!(d, before);
        let mut z = ZScore::default();
        let mut e = Ewma::default();
        assert_eq!(
            (z.observe(f64::NAN), e.observe(f64::INFINITY)),
            (None, None)
        );
        assert!(z.is_empty());
        assert_eq!(e.count(), 0);
    }

    #[test]
    fn extreme_values_do_not_panic_and_the_state_recovers() {
        let mut d = Detector::new(&DetectorConfig {
            window: 10,
            min_samples: 5,
            min_gap_ms: 0,
            ..DetectorConfig::default()
        });
        let extremes = [
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
            -0.0,
            1e308,
            -1e308,
            5e-324,
            f64::MAX,
            f64::MAX,
            -f64::MAX,
        ];
        for (i, &x) in extremes.iter().cycle().take(100).enumerate() {
            let _ = d.observe(x, i as i64);
        }
        // Back to ordinary values: within a window both methods are finite and working again.
        for i in 0..30 {
            let _ = d.observe(1.0 + f64::from(i % 2) * 0.01, 1000 + i64::from(i));
        }
        let (zm, zsd) = d.zscore().mean_sd().expect("state");
        let (em, esd) = d.ewma().mean_sd().expect("state");
        assert!(zm.is_finite() && zsd.is_finite() && em.is_finite() && esd.is_finite());
        let r = d.observe(10.0, 2000).expect("a spike after recovery");
        assert_eq!(r.scores.len(), 2);
    }

    #[test]
    fn running_sums_do_not_drift() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut z = ZScore::new(100, 10, 3.0);
        for i in 0..100_037 {
            // Large values with small noise: the case raw sums of squares get wrong.
            z.observe(1e9 + f64::from(i % 7) + rng.f64());
        }
        let (mean, sd) = z.mean_sd().expect("state");
        let n = z.ring.len() as f64;
        let exact_mean = z.ring.iter().sum::<f64>() / n;
        let exact_sd =
            (z.ring.iter().map(|v| (v - exact_mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!((mean - exact_mean).abs() < 1e-6, "{mean} vs {exact_mean}");
        assert!(
            (sd - exact_sd).abs() < 1e-6 * exact_sd,
            "{sd} vs {exact_sd}"
        );
    }

    #[test]
    fn config_validation() {
        assert_eq!(DetectorConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut DetectorConfig), field: &str| {
            let mut c = DetectorConfig::default();
            f(&mut c);
            let e = c.validate().expect_err(field);
            assert!(e.starts_with(field), "{e}");
            // Whatever the config, building a detector and feeding it does not panic.
            let mut d = Detector::new(&c);
            for i in 0..30 {
                let _ = d.observe(f64::from(i), i64::from(i));
            }
        };
        bad(|c| c.window = 1, "window");
        bad(|c| c.window = MAX_WINDOW + 1, "window");
        bad(|c| c.min_samples = 1, "min_samples");
        bad(|c| c.min_samples = 101, "min_samples");
        bad(|c| c.zscore_threshold = 0.0, "zscore_threshold");
        bad(|c| c.zscore_threshold = f64::NAN, "zscore_threshold");
        bad(|c| c.ewma_threshold = f64::INFINITY, "ewma_threshold");
        bad(|c| c.ewma_threshold = -1.0, "ewma_threshold");
        bad(|c| c.ewma_alpha = 0.0, "ewma_alpha");
        bad(|c| c.ewma_alpha = 1.5, "ewma_alpha");
        bad(|c| c.ewma_alpha = f64::NAN, "ewma_alpha");
        bad(|c| c.min_gap_ms = -1, "min_gap_ms");
        let edge = DetectorConfig {
            window: 2,
            min_samples: 2,
            ewma_alpha: 1.0,
            min_gap_ms: 0,
            ..DetectorConfig::default()
        };
        assert_eq!(edge.validate(), Ok(()));
    }

    #[test]
    fn method_names() {
        assert_eq!(Method::ZScore.as_str(), "zscore");
        assert_eq!(Method::Ewma.to_string(), "ewma");
    }
}
