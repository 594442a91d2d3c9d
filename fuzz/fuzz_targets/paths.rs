//! The packed paths against a model (a sorted, deduplicated `Vec<String>`): pushes and
//! sorts, merges of new paths, retains and lookups agree with it.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use metasystem_actors::paths::{From, Paths};

#[derive(Arbitrary, Debug)]
enum Op {
    /// Push paths out of order, then sort (deduplicated).
    PushSort(Vec<String>),
    /// Merge new paths (sorted, none held, as the caller guarantees).
    Merge(Vec<String>),
    /// Keep the paths whose index has this bit pattern.
    Retain(u64),
    Find(String),
}

fuzz_target!(|ops: Vec<Op>| {
    let mut paths = Paths::default();
    let mut model: Vec<String> = Vec::new();
    for op in ops.into_iter().take(64) {
        match op {
            Op::PushSort(new) => {
                let mut values: Vec<usize> = (0..paths.len()).collect();
                for p in new.iter().take(64) {
                    paths.push(p);
                    values.push(values.len());
                    model.push(p.clone());
                }
                let before: Vec<String> = paths.iter().map(str::to_string).collect();
                paths.sort_along(&mut values);
                model.sort();
                model.dedup();
                // Each value still names its path.
                for (i, v) in values.iter().enumerate() {
                    assert_eq!(paths.get(i), before[*v]);
                }
            }
            Op::Merge(new) => {
                let mut new: Vec<String> = new
                    .into_iter()
                    .take(64)
                    .filter(|p| model.binary_search(p).is_err())
                    .collect();
                new.sort();
                new.dedup();
                let refs: Vec<&str> = new.iter().map(String::as_str).collect();
                let before: Vec<String> = paths.iter().map(str::to_string).collect();
                let mut origin = vec![None; paths.len() + refs.len()];
                paths.merge(&refs, |from, at| origin[at] = Some(from));
                model.extend(new.iter().cloned());
                model.sort();
                for (at, from) in origin.iter().enumerate() {
                    match from {
                        Some(From::Held(i)) => assert_eq!(paths.get(at), before[*i]),
                        Some(From::New(j)) => assert_eq!(paths.get(at), new[*j]),
                        None => assert_eq!(paths.get(at), before[at]),
                    }
                }
            }
            Op::Retain(bits) => {
                let keep = |i: usize| bits >> (i % 64) & 1 == 1;
                paths.retain(keep);
                let mut i = 0;
                model.retain(|_| {
                    let k = keep(i);
                    i += 1;
                    k
                });
            }
            Op::Find(p) => {
                assert_eq!(paths.find(&p), model.binary_search(&p));
            }
        }
        assert_eq!(paths.len(), model.len());
        assert!(paths.iter().eq(model.iter().map(String::as_str)));
        assert!(paths.is_sorted());
        assert_eq!(paths.byte_len(), model.iter().map(String::len).sum::<usize>());
    }
});
