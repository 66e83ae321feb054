use super::*;
use crate::budgets::Decision;
use crate::secrets::SecretSources;
use std::sync::Arc;

const NOW: i64 = 1_796_126_400;

fn config(providers: &str, cap_usd: &str) -> String {
    format!(
        r#"providers: [{providers}]
api_keys: [{{name: app, secret: GW_APP}}]
budgets: {{agents: {{app: {{cap_usd: "{cap_usd}", window: daily}}}}}}
rate_limits: [{{name: rpm, per: api_key, requests_per_minute: 5}}]
"#
    )
}

const OPENAI: &str = "{name: oa, type: openai, api_key_secret: UP_KEY}";
const LOCAL: &str = "{name: local, type: openai-compatible, base_url: 'http://127.0.0.1:9/v1'}";

struct Fixture {
    gw: Arc<Gateway>,
    file: PathBuf,
    secrets: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

async fn fixture(text: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    for (k, v) in [("UP_KEY", "sk-up"), ("GW_APP", "gw-app-key")] {
        std::fs::write(secrets.path().join(k), v).unwrap();
    }
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, text).unwrap();
    let loaded = config_file::load(&file).unwrap();
    let sources = SecretSources {
        dir: Some(secrets.path().to_path_buf()),
        env: false,
    };
    let gw = Arc::new(Gateway::start(loaded, sources).await.unwrap());
    Fixture {
        gw,
        file,
        secrets,
        _dir: dir,
    }
}

impl Fixture {
    async fn write(&self, text: &str) -> Outcome {
        std::fs::write(&self.file, text).unwrap();
        check(&self.gw, false).await
    }
}

#[tokio::test]
async fn a_changed_file_is_applied_and_an_unchanged_one_is_not() {
    let f = fixture(&config(OPENAI, "1")).await;
    assert_eq!(check(&f.gw, false).await, Outcome::Unchanged);
    let before = version(&f.gw.live().plugin_json);

    let out = f.write(&config(&format!("{OPENAI}, {LOCAL}"), "1")).await;
    let Outcome::Applied { version: v } = out else {
        panic!("{out:?}")
    };
    let live = f.gw.live();
    assert!(live.config.provider("local").is_some());
    assert_ne!(v, before);
    assert_eq!(v, version(&live.plugin_json));
    let st = f.gw.reload.status(&f.gw);
    assert_eq!((st.reloads, st.failures, st.error), (1, 0, None));
    assert_eq!(st.version, v);
    // Only comments changed: the same config, nothing to apply.
    let out = f
        .write(&format!(
            "# edited\n{}",
            config(&format!("{OPENAI}, {LOCAL}"), "1")
        ))
        .await;
    assert_eq!(out, Outcome::Unchanged);
}

#[tokio::test]
async fn a_bad_config_is_refused_with_the_field_named_and_the_old_one_kept() {
    let f = fixture(&config(OPENAI, "1")).await;
    let out = f
        .write(&config(
            "{name: Bad_Name, type: openai, api_key_secret: UP_KEY}",
            "1",
        ))
        .await;
    let Outcome::Refused(why) = out else {
        panic!("{out:?}")
    };
    assert!(why.contains("providers[0].name"), "{why}");
    assert!(
        f.gw.live().config.provider("oa").is_some(),
        "old config kept"
    );
    let st = f.gw.reload.status(&f.gw);
    assert_eq!((st.reloads, st.failures), (0, 1));
    assert!(st.error.unwrap().contains("providers[0].name"));
    assert!(f.gw.metrics.render().contains("aigw_config_file_refused 1"));
    // Not retried while the file stays the same.
    assert_eq!(check(&f.gw, false).await, Outcome::Unchanged);
    assert_eq!(f.gw.reload.status(&f.gw).failures, 1);
    // Put back as it was: the refusal is over, nothing to apply.
    assert_eq!(f.write(&config(OPENAI, "1")).await, Outcome::Unchanged);
    assert!(f.gw.reload.status(&f.gw).error.is_none());
    assert!(f.gw.metrics.render().contains("aigw_config_file_refused 0"));
}

#[tokio::test]
async fn a_config_waiting_for_its_secret_is_applied_once_the_secret_appears() {
    let f = fixture(&config(OPENAI, "1")).await;
    let more = config(
        &format!("{OPENAI}, {{name: ant, type: anthropic, api_key_secret: ANT_KEY}}"),
        "1",
    );
    let Outcome::Refused(why) = f.write(&more).await else {
        panic!()
    };
    assert!(
        why.contains("ANT_KEY (from providers[1].api_key_secret)"),
        "{why}"
    );
    std::fs::write(f.secrets.path().join("ANT_KEY"), "sk-ant").unwrap();
    assert!(f.gw.refresh().await, "the secret store changed");
    assert!(matches!(check(&f.gw, true).await, Outcome::Applied { .. }));
    assert!(f.gw.live().config.provider("ant").is_some());
}

#[tokio::test]
async fn budgets_and_limits_keep_their_counts_under_the_new_config() {
    let f = fixture(&config(OPENAI, "1")).await;
    let old = f.gw.live();
    // $0.60 spent under a $1 cap.
    let Decision::Reserved(r) = old.budgets.reserve("app", 600_000_000, NOW) else {
        panic!()
    };
    r.settle(600_000_000);
    assert!(matches!(
        f.write(&config(OPENAI, "0.5")).await,
        Outcome::Applied { .. }
    ));
    let live = f.gw.live();
    // The lower cap counts what was spent: nothing more fits.
    match live.budgets.reserve("app", 1, NOW) {
        Decision::Refused(e) => {
            assert_eq!(
                (e.cap_nanousd, e.committed_nanousd),
                (500_000_000, 600_000_000)
            )
        }
        other => panic!("{other:?}"),
    }
    // A raised cap: room again, the spend still counted.
    assert!(matches!(
        f.write(&config(OPENAI, "2")).await,
        Outcome::Applied { .. }
    ));
    let st = f.gw.live().budgets.status(NOW);
    assert_eq!(
        (st[0].cap_nanousd, st[0].spent_nanousd),
        (2_000_000_000, 600_000_000)
    );
}
