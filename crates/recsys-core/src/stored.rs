//! The saved form of a [`HybridModel`](crate::HybridModel): what a model file or an
//! artifact bundle holds, defined here and nowhere else, so that a change of how training
//! lays parameters out in memory (row padding, alignment, hot/cold splits) cannot change a
//! file without a change to this module and its [`MODEL_RECORD_VERSION`].
//!
//! # Model record, version 1
//!
//! The record is a serde struct; in the bundle it is encoded with postcard (integers as
//! varints, fields in this order, no names), in JSON with the field names below.
//!
//! | field | content |
//! |---|---|
//! | `version` | [`MODEL_RECORD_VERSION`]; any other value is refused with "re-train" advice |
//! | `params` | the hyper-parameters ([`Hyperparameters`](crate::Hyperparameters)) |
//! | `user_features`, `item_features` | the feature matrices, CSR (`FeatureMatrix`) |
//! | `users`, `items` | one side record each (below) |
//! | `rng` | the generator's four 64-bit words (continued training draws from it) |
//! | `epochs_trained` | epochs trained so far |
//!
//! A side record (`n` = features of the side, `k` = components):
//!
//! | field | content |
//! |---|---|
//! | `features`, `components` | `n`, `k` |
//! | `embeddings` | `n × k` floats, row-major, no padding |
//! | `biases` | `n` floats |
//! | `optimiser` | absent, or the optimiser state (below) |
//!
//! The optimiser state, present only when the model was saved for continued training
//! ([`HybridModel::has_training_state`](crate::HybridModel::has_training_state)):
//! `embedding_accumulators` (`n × k`) and `bias_accumulators` (`n`) — adagrad's sums of
//! squared gradients, adadelta's running mean of squared gradients — and, for adadelta
//! only, `embedding_deltas` (`n × k`) and `bias_deltas` (`n`), the running mean of squared
//! steps (empty for adagrad). These are LightFM's `*_gradients` and `*_momentum` arrays.
//!
//! Float arrays are IEEE-754 `f32`: little-endian bytes in one byte string in binary formats,
//! lists of numbers in human-readable ones. Decoding checks every length against `n` and `k`
//! before anything is allocated from it, that parameters are finite and that optimiser state
//! is neither NaN nor negative; the model then checks the parts agree
//! ([`HybridModel::validate`](crate::HybridModel::validate)).

use serde::{Deserialize, Serialize};

/// The version of the saved model record this library writes and reads.
pub const MODEL_RECORD_VERSION: u32 = 1;

/// Refuses a saved record of another version (with the advice to re-train).
pub(crate) fn check_version(found: u32) -> crate::Result<()> {
    if found == MODEL_RECORD_VERSION {
        Ok(())
    } else {
        Err(crate::CoreError::UnsupportedRecord {
            found,
            supported: MODEL_RECORD_VERSION,
        })
    }
}

/// Wraps a part's own validation error as [`CoreError::Corrupt`](crate::CoreError::Corrupt)
/// naming the part.
pub(crate) fn corrupt_part(what: &'static str) -> impl Fn(crate::CoreError) -> crate::CoreError {
    move |e| crate::CoreError::Corrupt {
        what,
        reason: e.to_string(),
    }
}

/// A float array as stored: little-endian bytes in binary formats (one allocation and one
/// copy to decode, instead of a number-by-number, repeatedly growing vector), a list of
/// numbers in human-readable ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct F32s(pub(crate) Vec<f32>);

impl Serialize for F32s {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return self.0.serialize(s);
        }
        let mut bytes = Vec::with_capacity(self.0.len() * 4);
        for v in &self.0 {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for F32s {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Floats;

        impl<'de> serde::de::Visitor<'de> for Floats {
            type Value = F32s;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of floats or their little-endian bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<F32s, E> {
                if !bytes.len().is_multiple_of(4) {
                    return Err(E::invalid_length(bytes.len(), &"a multiple of 4 bytes"));
                }
                Ok(F32s(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<F32s, E> {
                self.visit_bytes(&bytes)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<F32s, A::Error> {
                let mut v: Vec<f32> = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(F32s(v))
            }
        }

        if d.is_human_readable() {
            d.deserialize_seq(Floats)
        } else {
            d.deserialize_bytes(Floats)
        }
    }
}

/// One side's parameters as saved (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SideRecord {
    pub(crate) features: u64,
    pub(crate) components: u64,
    pub(crate) embeddings: F32s,
    pub(crate) biases: F32s,
    pub(crate) optimiser: Option<OptimiserRecord>,
}

/// One side's optimiser state as saved (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OptimiserRecord {
    pub(crate) embedding_accumulators: F32s,
    pub(crate) bias_accumulators: F32s,
    pub(crate) embedding_deltas: F32s,
    pub(crate) bias_deltas: F32s,
}

impl SideRecord {
    /// `(n, k)` after checking every array's length against them (`adadelta`: whether the
    /// optimiser state must carry the deltas).
    pub(crate) fn check_shape(&self, adadelta: bool) -> Result<(usize, usize), String> {
        let n = usize::try_from(self.features).map_err(|_| "feature count overflows")?;
        let k = usize::try_from(self.components).map_err(|_| "component count overflows")?;
        let nk = n.checked_mul(k).ok_or("embedding size overflows")?;
        let mut arrays = vec![
            ("embeddings", self.embeddings.0.len(), nk),
            ("biases", self.biases.0.len(), n),
        ];
        if let Some(o) = &self.optimiser {
            let d = usize::from(adadelta);
            arrays.extend([
                (
                    "embedding accumulators",
                    o.embedding_accumulators.0.len(),
                    nk,
                ),
                ("bias accumulators", o.bias_accumulators.0.len(), n),
                ("embedding deltas", o.embedding_deltas.0.len(), nk * d),
                ("bias deltas", o.bias_deltas.0.len(), n * d),
            ]);
        }
        for (what, found, expected) in arrays {
            if found != expected {
                return Err(format!(
                    "{found} {what} for {n} features × {k} components (expected {expected})"
                ));
            }
        }
        if let Some(v) = self
            .embeddings
            .0
            .iter()
            .chain(&self.biases.0)
            .find(|v| !v.is_finite())
        {
            return Err(format!("parameter {v} is not finite"));
        }
        if let Some(o) = &self.optimiser {
            let state = [
                &o.embedding_accumulators,
                &o.bias_accumulators,
                &o.embedding_deltas,
                &o.bias_deltas,
            ];
            if let Some(v) = state
                .iter()
                .flat_map(|a| &a.0)
                .find(|&&v| v.is_nan() || v < 0.0)
            {
                return Err(format!("optimiser state {v} is NaN or negative"));
            }
        }
        Ok((n, k))
    }
}
