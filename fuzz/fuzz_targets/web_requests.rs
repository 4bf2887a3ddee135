//! Raw HTTP requests (`antibody_formats::rawhttp`) into `http` events, then judged and learned
//! by web profiles (`antibody_detect::webprof`): nothing may panic, every parsed request keeps
//! its bounds, and a finding's evidence can be learned back.
#![no_main]

use antibody_core::TenantId;
use antibody_detect::webprof::{finding, request, Request, WebProfiles, WebProfilesConfig};
use antibody_formats::RawHttpReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = WebProfilesConfig {
        learn_requests: 2,
        ..WebProfilesConfig::default()
    };
    let tenant = TenantId::new("fuzz");
    let mut profiles = WebProfiles::default();
    for (i, raw) in RawHttpReader::new(data).take(64).enumerate() {
        let Ok(raw) = raw else { continue };
        let ev = raw.to_event(tenant.clone(), i as i64);
        if let Some(req) = Request::from_event(&ev) {
            assert!(req.param_count() <= request::MAX_PARAMS);
            assert_eq!(req.shapes.len(), req.param_count());
        }
        // Learn it, then judge it again (and again as a false positive).
        for _ in 0..3 {
            if let Some(v) = profiles.on_event(&cfg, &ev) {
                let f = finding(format!("f-{i}"), &ev, &v);
                assert!((0.0..=1.0).contains(&f.score));
                profiles.learn_finding(&cfg, &tenant, &f.evidence);
            }
        }
    }
});
