//! A model as one file, for upload over HTTP: the same parts as a model directory, length-
//! prefixed behind a magic header.
//!
//! ```text
//! "ABMLBNDL"                    8 bytes, magic
//! layout version                u32 little-endian (BUNDLE_VERSION)
//! manifest length, manifest     u64 LE, the model.json bytes
//! weights length, weights       u64 LE, the model.bin bytes (postcard)
//! sample length, sample         u64 LE, the sample.bin bytes (postcard); 0 = no sample
//! ```
//!
//! [`Model::from_bundle`] refuses what [`Model::load`] refuses (another format or format
//! version, a schema hash this build computes differently, a part whose SHA-256 differs from
//! the manifest's, weights of another feature count, shapes or costs above the caps in
//! `model`, `tree` and `seq`) and anything that is not exactly this layout. A bundle is input
//! from the network: no byte sequence makes it panic, nor makes a model that panics when
//! served (the property tests score and explain whatever loads).

use crate::error::{MlError, Result};
use crate::model::{decode_sample, decode_weights, parse_manifest, Model};

pub const BUNDLE_MAGIC: &[u8; 8] = b"ABMLBNDL";
pub const BUNDLE_VERSION: u32 = 1;

fn bad(message: impl Into<String>) -> MlError {
    MlError::Bundle(message.into())
}

/// Reads the layout front to back, refusing lengths past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(bad(format!("truncated in the {what}")));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn section(&mut self, what: &str) -> Result<&'a [u8]> {
        let b = self.take(8, what)?;
        let mut len = [0u8; 8];
        len.copy_from_slice(b);
        let len = usize::try_from(u64::from_le_bytes(len))
            .map_err(|_| bad(format!("the {what} length does not fit in memory")))?;
        self.take(len, what)
    }
}

impl Model {
    /// The model as one bundle file (and its manifest's hashes updated, as by `save`).
    /// Encoding plain in-memory structures cannot fail; were it ever to, the result is empty,
    /// which [`Model::from_bundle`] refuses.
    pub fn to_bundle(&mut self) -> Vec<u8> {
        let Ok(enc) = self.encode() else {
            return Vec::new();
        };
        let sample = enc.sample.unwrap_or_default();
        let mut out = Vec::with_capacity(
            BUNDLE_MAGIC.len() + 4 + 24 + enc.manifest.len() + enc.weights.len() + sample.len(),
        );
        out.extend_from_slice(BUNDLE_MAGIC);
        out.extend_from_slice(&BUNDLE_VERSION.to_le_bytes());
        for part in [&enc.manifest, &enc.weights, &sample] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Reads and checks a bundle written by [`Model::to_bundle`].
    pub fn from_bundle(bytes: &[u8]) -> Result<Model> {
        let mut r = Reader(bytes);
        if r.take(BUNDLE_MAGIC.len(), "header").ok() != Some(&BUNDLE_MAGIC[..]) {
            return Err(bad("not an antibody model bundle (wrong magic bytes)"));
        }
        let version = r.u32("header")?;
        if version != BUNDLE_VERSION {
            return Err(bad(format!(
                "bundle layout {version} is not supported (this build reads layout {BUNDLE_VERSION})"
            )));
        }
        let manifest = r.section("manifest")?;
        let weights = r.section("weights")?;
        let sample = r.section("sample")?;
        if !r.0.is_empty() {
            return Err(bad(format!("{} bytes after the last part", r.0.len())));
        }
        let manifest = parse_manifest(manifest, &|m| bad(m))?;
        let ensemble = decode_weights(weights, &manifest).map_err(bad)?;
        let sample = match (&manifest.sample, sample.is_empty()) {
            (None, true) => None,
            (Some(info), false) => Some(decode_sample(sample, info, &manifest).map_err(bad)?),
            (Some(_), true) => {
                return Err(bad("the manifest names a training sample the bundle lacks"))
            }
            (None, false) => {
                return Err(bad(
                    "the bundle holds a training sample its manifest does not describe",
                ))
            }
        };
        Ok(Model {
            manifest,
            ensemble,
            sample,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::DriftWindow;
    use crate::model::tests::trained_with_data;
    use crate::model::{Score, FORMAT_VERSION, MANIFEST_FILE};
    use crate::serve::{Prediction, Scorer, ServedModel};
    use crate::train::tests::{generated, generated_with, quick};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};
    use std::sync::OnceLock;

    /// One trained model's bundle, shared by the property tests.
    fn bundle() -> &'static [u8] {
        static BUNDLE: OnceLock<Vec<u8>> = OnceLock::new();
        BUNDLE.get_or_init(|| trained_with_data().to_bundle())
    }

    /// The same model with a sequence part, so corrupted bundles reach its decoding too.
    fn with_sequence() -> &'static Model {
        static MODEL: OnceLock<Model> = OnceLock::new();
        MODEL.get_or_init(|| {
            let ds = generated_with(600, 4, true);
            let mut m = trained_with_data();
            let t = crate::train::train(&ds, &quick(), &mut crate::train::NoProgress);
            m.ensemble.sequence = t.ok().and_then(|t| t.ensemble.sequence);
            assert!(m.ensemble.sequence.is_some());
            m
        })
    }

    fn sequence_bundle() -> &'static [u8] {
        static BUNDLE: OnceLock<Vec<u8>> = OnceLock::new();
        BUNDLE.get_or_init(|| with_sequence().clone().to_bundle())
    }

    /// The bundle's three parts.
    fn parts(b: &[u8]) -> [Vec<u8>; 3] {
        let mut r = Reader(&b[12..]);
        let mut next = || r.section("x").unwrap().to_vec();
        [next(), next(), next()]
    }

    fn assemble(parts: &[Vec<u8>; 3]) -> Vec<u8> {
        let mut out = BUNDLE_MAGIC.to_vec();
        out.extend_from_slice(&BUNDLE_VERSION.to_le_bytes());
        for p in parts {
            out.extend_from_slice(&(p.len() as u64).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    fn edit_manifest(b: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut p = parts(b);
        let mut v: serde_json::Value = serde_json::from_slice(&p[0]).unwrap();
        edit(&mut v);
        p[0] = serde_json::to_vec(&v).unwrap();
        assemble(&p)
    }

    /// A model that loaded must also serve without panicking: score a batch, explain a row
    /// and score an entity's window as the engine does, and explain in full.
    fn exercise(m: Model) {
        let n = m.manifest.feature_set.n_features().max(1);
        let values = [0.5f32, 0.0, -1e9, f32::NAN, 1e30];
        let rows: Vec<f32> = values
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, n))
            .collect();
        let _ = m.ensemble.explain(&rows[..n], &mut Default::default());
        let mut scores = vec![Score::default(); values.len()];
        m.ensemble.score_batch(&rows, &mut scores);
        let served = ServedModel::new(m);
        let mut predictions = vec![Prediction::default(); values.len()];
        served.score_batch(&rows, &mut predictions);
        served.contributions(&rows[..n], &mut vec![0.0; n]);
        let steps: Vec<&[f32]> = rows
            .chunks_exact(n)
            .cycle()
            .take(served.sequence_len() + 2)
            .collect();
        let _ = served.score_sequence(&steps, &mut vec![0.0; steps.len()]);
        if let Some(r) = served.drift_reference() {
            let mut window = DriftWindow::new(r, 4);
            rows.chunks_exact(n).for_each(|row| window.observe(row));
            let _ = window.max_psi();
        }
    }

    #[test]
    fn round_trip_equals_the_saved_directory() {
        let mut m = trained_with_data();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let from_dir = Model::load(dir.path()).unwrap();
        let from_bundle = Model::from_bundle(&m.to_bundle()).unwrap();
        assert_eq!(from_bundle.manifest, from_dir.manifest);
        assert_eq!(from_bundle.sample, from_dir.sample);
        assert!(from_bundle.sample.is_some() && from_bundle.manifest.reference.is_some());
        let ds = generated(40, 9);
        for i in 0..ds.n_rows() {
            assert_eq!(
                from_bundle.ensemble.score_row(ds.row(i)),
                m.ensemble.score_row(ds.row(i))
            );
        }
        // The manifest part is the directory's model.json, byte for byte.
        let json = std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
        assert_eq!(parts(&m.to_bundle())[0], json);
    }

    #[test]
    fn refusals_name_the_reason() {
        let b = bundle();
        let err = |bytes: &[u8]| Model::from_bundle(bytes).unwrap_err();
        assert!(err(b"nope").to_string().contains("magic"));
        let mut v2 = b.to_vec();
        v2[8] = 2;
        assert!(err(&v2).to_string().contains("layout 2"));
        let e = err(&edit_manifest(b, |v| v["format_version"] = 99.into()));
        assert!(matches!(e, MlError::FormatVersion { found: 99, .. }), "{e}");
        let e = err(&edit_manifest(b, |v| v["format"] = "other".into()));
        assert!(e.to_string().contains("not an antibody-ml-model"), "{e}");
        let e = err(&edit_manifest(b, |v| {
            v["feature_set"]["window_minutes"] = 5.0.into()
        }));
        assert!(matches!(e, MlError::SchemaMismatch { .. }), "{e}");
        let e = err(&edit_manifest(b, |v| v["weights_sha256"] = "00".into()));
        assert!(e.to_string().contains("SHA-256"), "{e}");
        let e = err(&edit_manifest(b, |v| v["sample"]["sha256"] = "00".into()));
        assert!(e.to_string().contains("sample"), "{e}");
        let e = err(&edit_manifest(b, |v| v["sample"] = serde_json::Value::Null));
        assert!(e.to_string().contains("does not describe"), "{e}");
        let mut p = parts(b);
        p[2].clear();
        assert!(err(&assemble(&p)).to_string().contains("lacks"));
        let mut long = b.to_vec();
        long.push(0);
        assert!(err(&long).to_string().contains("after the last part"));
        assert_eq!(FORMAT_VERSION, 2);
    }

    #[test]
    fn feature_sets_beyond_the_caps_are_refused_before_hashing() {
        use crate::model::MAX_FEATURES;
        use serde_json::json;
        let b = bundle();
        let err = |edit: serde_json::Value| {
            let bytes = edit_manifest(b, |v| v["feature_set"] = edit);
            Model::from_bundle(&bytes).unwrap_err().to_string()
        };
        let numeric = |n: usize| {
            let columns: Vec<_> = (0..n)
                .map(|i| json!({"name": format!("c{i}"), "kind": {"type": "numeric"}}))
                .collect();
            json!({"set": "tabular", "columns": columns})
        };
        let e = err(numeric(MAX_FEATURES + 1));
        assert!(e.contains("MAX_FEATURES"), "{e}");
        let e = err(numeric(0));
        assert!(e.contains("MAX_FEATURES"), "{e}");
        // 4,096 one-hot levels under a long name would make 4,096 long feature names.
        let levels: Vec<String> = (0..MAX_FEATURES).map(|i| i.to_string()).collect();
        let e = err(
            json!({"set": "tabular", "columns": [{"name": "x".repeat(4096),
            "kind": {"type": "categorical", "levels": levels, "encoding": "one-hot"}}]}),
        );
        assert!(e.contains("4096 levels"), "{e}");
    }

    #[test]
    fn weights_of_another_feature_count_are_refused() {
        // A tabular model's weights under the agent-behaviour manifest: hash fixed up.
        let other = crate::model::tests::trained_tabular().to_bundle();
        let forged = with_weights(&parts(bundle()), parts(&other)[1].clone());
        let e = Model::from_bundle(&forged).unwrap_err().to_string();
        assert!(e.contains("features"), "{e}");
    }

    #[test]
    fn a_sequence_model_with_overflowing_sizes_is_refused() {
        let mut m = trained_with_data();
        m.ensemble.sequence = Some(crate::seq::tests::forged_overflowing());
        let e = Model::from_bundle(&m.to_bundle()).unwrap_err().to_string();
        assert!(e.contains("sequence model"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(Model::from_bundle(&bytes).is_err());
            let mut framed = BUNDLE_MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            prop_assert!(Model::from_bundle(&framed).is_err());
        }

        #[test]
        fn every_truncation_is_refused(cut in 0.0f64..1.0) {
            let b = bundle();
            let len = (b.len() as f64 * cut) as usize;
            prop_assert!(Model::from_bundle(&b[..len]).is_err());
        }

    }

    proptest! {
        // Each case decodes and compiles a whole model: fewer cases keep the suite quick.
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn flipped_bytes_never_panic(pos in 0.0f64..1.0, xor in 1u8..=255) {
            let mut b = bundle().to_vec();
            let i = ((b.len() - 1) as f64 * pos) as usize;
            b[i] ^= xor;
            if let Ok(m) = Model::from_bundle(&b) {
                exercise(m);
            }
        }

        /// An uploader can recompute the hash: corrupt weights behind a matching SHA-256
        /// are refused or load into a model that still scores safely.
        #[test]
        fn corrupt_weights_with_a_matching_hash_never_panic(
            pos in 0.0f64..1.0,
            xor in 1u8..=255,
            sequence: bool,
        ) {
            let b = if sequence { sequence_bundle() } else { bundle() };
            let mut p = parts(b);
            let i = ((p[1].len() - 1) as f64 * pos) as usize;
            p[1][i] ^= xor;
            if let Ok(m) = Model::from_bundle(&with_weights(&p, p[1].clone())) {
                exercise(m);
            }
        }
    }

    proptest! {
        // Every case decodes a bundle; about one in ten loads and is served.
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// The sequence part's sizes, the review's finding: any sizes, with as many weights
        /// as they need or any other count, are refused or load into a model that serves.
        #[test]
        fn forged_sequence_sizes_never_panic(
            d in prop_oneof![4 => Just(18u64), 1 => 0u64..40, 1 => any::<u64>()],
            sizes in proptest::collection::vec(
                prop_oneof![6 => 1u64..33, 1 => 0u64..300, 1 => any::<u64>(), 1 => Just(1 << 32)],
                3,
            ),
            weights in prop_oneof![4 => Just(None), 1 => (0usize..5000).prop_map(Some)],
        ) {
            let (h, a, window) = (sizes[0], sizes[1], sizes[2]);
            // 3h(d + h + 1) + ah + 2a + h + 1, when that is a count worth allocating.
            let needed = (|| {
                let gru = d.checked_add(h)?.checked_add(1)?.checked_mul(h)?.checked_mul(3)?;
                let attention = a.checked_mul(h.checked_add(2)?)?;
                gru.checked_add(attention)?.checked_add(h)?.checked_add(1)
            })()
            .filter(|&n| n < 1 << 20);
            let mut m = with_sequence().clone();
            let mut v = serde_json::to_value(m.ensemble.sequence.as_ref().unwrap()).unwrap();
            v["n_features"] = d.into();
            v["hidden"] = h.into();
            v["attention"] = a.into();
            v["window"] = window.into();
            let count = weights.or(needed.map(|n| n as usize)).unwrap_or(0);
            v["weights"] = vec![0.1; count].into();
            if d < 4096 {
                v["mean"] = vec![0.0; d as usize].into();
                v["scale"] = vec![1.0; d as usize].into();
            }
            m.ensemble.sequence = Some(serde_json::from_value(v).unwrap());
            if let Ok(m) = Model::from_bundle(&m.to_bundle()) {
                exercise(m);
            }
        }
    }

    /// The bundle's parts with other weights, their hash fixed up.
    fn with_weights(p: &[Vec<u8>; 3], weights: Vec<u8>) -> Vec<u8> {
        let mut p = p.clone();
        p[1] = weights;
        let mut v: serde_json::Value = serde_json::from_slice(&p[0]).unwrap();
        v["weights_sha256"] = hex::encode(Sha256::digest(&p[1])).into();
        p[0] = serde_json::to_vec(&v).unwrap();
        assemble(&p)
    }
}
