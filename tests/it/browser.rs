//! The web pages in headless Chromium, driven through WebDriver (`fantoccini` against Debian's
//! `chromedriver`): an office signs in, acts on a step from its inbox and sees it on the
//! timeline; oversight staff sign in and see the act in the audit trail with the chain verified;
//! a vote without quorum shows the refusal message.
//!
//! Chromium and chromedriver are `/usr/bin/chromium` and `/usr/bin/chromedriver` (or `CHROMIUM`
//! and `CHROMEDRIVER`). Missing, the tests print a SKIP line; with `CI=true` they fail.
//! With `CIVICFLOW_SCREENSHOTS=1` they also write 1280×800 screenshots of each page to
//! `docs/screenshots/`.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::pages::harness::PagesEnv;

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
    client: Option<Client>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(var: &str, default: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_string()));
    path.exists().then_some(path)
}

/// Starts chromedriver and a headless Chromium session, or `None` (after a SKIP line) when
/// either is missing outside CI.
async fn chromium(test: &str) -> Option<Driver> {
    let (Some(chrome), Some(driver)) =
        (which("CHROMIUM", "/usr/bin/chromium"), which("CHROMEDRIVER", "/usr/bin/chromedriver"))
    else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("Chromium or chromedriver is missing and CI=true (apt-get install chromium chromium-driver)");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIP browser::{test}: Chromium or chromedriver is missing (apt-get install chromium chromium-driver); with CI=true this fails"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child =
        Command::new(driver).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let profile = tempfile::tempdir().unwrap();
    let mut d = Driver { child, url, _profile: profile, client: None };
    let probe = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if probe.get(format!("{}/status", d.url)).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "chromedriver did not answer on {}", d.url);
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1280,800".into(),
        "--lang=zh-CN".into(),
        format!("--user-data-dir={}", d._profile.path().display()),
    ];
    let caps = json!({ "goog:chromeOptions": { "binary": chrome.display().to_string(), "args": args } });
    let serde_json::Value::Object(caps) = caps else { unreachable!() };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector).capabilities(caps).connect(&d.url).await.unwrap();
    // The viewport (what a screenshot shows) is 1280×800: the window adds its own frame.
    let frame = client
        .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]", vec![])
        .await
        .unwrap();
    let (fw, fh) = (frame[0].as_u64().unwrap_or(0), frame[1].as_u64().unwrap_or(0));
    client.set_window_size(1280 + fw as u32, 800 + fh as u32).await.unwrap();
    d.client = Some(client);
    Some(d)
}

/// Where screenshots go, when asked for.
fn screenshots() -> Option<PathBuf> {
    std::env::var("CIVICFLOW_SCREENSHOTS")
        .is_ok_and(|v| v == "1")
        .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots"))
}

async fn shot(c: &Client, name: &str) {
    if let Some(dir) = screenshots() {
        std::fs::create_dir_all(&dir).unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.delete_all_cookies().await.unwrap();
    c.goto(&format!("{base}/signin")).await.unwrap();
    c.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    c.find(Locator::Css("#signin")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#who")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/inbox"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_acts_from_its_inbox_and_oversight_sees_it_verified() {
    let Some(mut driver) = chromium("an_office_acts_from_its_inbox_and_oversight_sees_it_verified").await else {
        return;
    };
    let c = driver.client.take().unwrap();
    let env = PagesEnv::start().await;
    env.start_instance("web-1").await;
    let wang = env.token("王书记", "街道党工委", "街道党工委").await;
    let zhao = env.token("赵监督", "区纪委监督室", "监督").await;
    let base = env.base.clone();

    c.goto(&format!("{base}/signin")).await.unwrap();
    shot(&c, "signin").await;
    sign_in(&c, &base, &wang).await;
    let inbox = c.find(Locator::Css("#inbox")).await.unwrap().text().await.unwrap();
    assert!(inbox.contains("资格审查") && inbox.contains("web-1"), "{inbox}");
    shot(&c, "inbox").await;

    // Act from the inbox: approve with a comment.
    c.find(Locator::Css("a.act-link")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#do-approve")).await.unwrap();
    c.find(Locator::Css("form.act input[name=comment]")).await.unwrap().send_keys("材料齐全,同意").await.unwrap();
    c.find(Locator::Css("#do-approve")).await.unwrap().click().await.unwrap();
    let done = c.wait().for_element(Locator::Css("#done")).await.unwrap().text().await.unwrap();
    assert_eq!(done, "已办理");

    // The timeline: the step is done, the vote is open, the act is listed with its actor.
    c.goto(&format!("{base}/instances/web-1")).await.unwrap();
    let row = c.find(Locator::Css("tr[data-step='资格审查'] td.st")).await.unwrap().text().await.unwrap();
    assert!(row.contains("done") && row.contains("approved"), "{row}");
    let vote = c.find(Locator::Css("tr[data-step='党员大会'] td.st")).await.unwrap().text().await.unwrap();
    assert!(vote.contains("open"), "{vote}");
    let acts = c.find(Locator::Css("#acts")).await.unwrap().text().await.unwrap();
    assert!(acts.contains("王书记") && acts.contains("材料齐全,同意"), "{acts}");
    c.find(Locator::Css("svg.graph g.open")).await.unwrap();
    shot(&c, "instance").await;

    // Oversight staff: the audit trail shows the act and the chain verified, and (once the next
    // checkpoint is signed) each event proved in the signed log.
    sign_in(&c, &base, &zhao).await;
    c.goto(&format!("{base}/instances/web-1/audit")).await.unwrap();
    for _ in 0..50 {
        if c.find_all(Locator::Css("td.log-pending")).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.refresh().await.unwrap();
    }
    assert!(c.find_all(Locator::Css("td.log-out")).await.unwrap().is_empty());
    let verified = c.find(Locator::Css("#verify-ok")).await.unwrap().text().await.unwrap();
    assert!(verified.contains("记录链校验通过"), "{verified}");
    let events = c.find(Locator::Css("#events")).await.unwrap().text().await.unwrap();
    assert!(events.contains("王书记") && events.contains("acted"), "{events}");
    shot(&c, "audit").await;
    // Filter by office in the form.
    c.find(Locator::Css("#office option[value='王书记']")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#filter")).await.unwrap().click().await.unwrap();
    for _ in 0..50 {
        if c.current_url().await.unwrap().query().is_some_and(|q| q.contains("office=")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let filtered = c.find(Locator::Css("#events")).await.unwrap().text().await.unwrap();
    assert!(!filtered.contains("timer"), "{filtered}");

    if screenshots().is_some() {
        c.goto(&format!("{base}/policies/election")).await.unwrap();
        shot(&c, "policy").await;
        c.goto(&format!("{base}/instances")).await.unwrap();
        shot(&c, "instances").await;
        let r = env
            .client
            .post(format!("{base}/v1/instances"))
            .bearer_auth(&env.admin)
            .json(&json!({ "policy": "community_access", "id": "access-1", "params": {
                "申请部门": "区卫健委", "事项名称": "健康档案入户核查", "社区名称": "东湖"
            }}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        c.goto(&format!("{base}/instances/access-1/notice")).await.unwrap();
        shot(&c, "notice").await;
        c.goto(&format!("{base}/inbox?lang=en")).await.unwrap();
        shot(&c, "inbox-en").await;
    }
    c.close().await.unwrap();
    env.finish().await;
}

/// Issue 12.6: oversight staff see which offices were late as charts drawn on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversight_sees_which_offices_were_late() {
    let Some(mut driver) = chromium("oversight_sees_which_offices_were_late").await else {
        return;
    };
    let c = driver.client.take().unwrap();
    let env = PagesEnv::start().await;
    let base = env.base.clone();
    env.publish(crate::http_oversight::LATE_POLICY).await;
    for (id, community) in [("d-1", "东湖社区"), ("d-2", "东湖社区"), ("w-1", "西湖社区"), ("n-1", "南湖社区")]
    {
        let body = json!({ "policy": "超时演练", "id": id, "params": { "社区名称": community } });
        env.start_with(body).await;
    }
    env.advance_to("2012-04-06T09:00:00+08:00").await;
    let zhao = env.token("纪委-赵", "街道纪工委", "纪委").await;
    sign_in(&c, &base, &zhao).await;
    c.goto(&format!("{base}/oversight?from=2012-03-01&to=2012-04-30")).await.unwrap();
    let total = c.find(Locator::Css("#total")).await.unwrap().text().await.unwrap();
    assert_eq!(total, "4");
    let bars = c.find_all(Locator::Css("#by-office rect")).await.unwrap();
    assert_eq!(bars.len(), 3, "东湖社区, 西湖社区, 南湖社区");
    let pairs = c.find(Locator::Css("#pairs")).await.unwrap().text().await.unwrap();
    assert!(pairs.contains("东湖社区") && pairs.contains("超时演练"), "{pairs}");
    shot(&c, "oversight").await;
    c.close().await.unwrap();
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_without_quorum_shows_the_refusal() {
    let Some(mut driver) = chromium("a_vote_without_quorum_shows_the_refusal").await else {
        return;
    };
    let c = driver.client.take().unwrap();
    let env = PagesEnv::start().await;
    env.start_instance("web-2").await;
    let wang = env.token("王书记", "街道党工委", "街道党工委").await;
    let li = env.token("李书记", "东湖社区", "社区党组织").await;
    let base = env.base.clone();
    // The approval through the API; the vote through the page.
    let r = env
        .client
        .post(format!("{base}/v1/instances/web-2/steps/{}/actions", "%E8%B5%84%E6%A0%BC%E5%AE%A1%E6%9F%A5"))
        .bearer_auth(&wang)
        .json(&json!({ "action": "approve" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let before = env.history("web-2").await.len();

    sign_in(&c, &base, &li).await;
    c.find(Locator::Css("a.act-link")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#do-vote")).await.unwrap();
    c.find(Locator::Css("#present")).await.unwrap().send_keys("80").await.unwrap();
    c.find(Locator::Css("#cast")).await.unwrap().send_keys("80").await.unwrap();
    c.find(Locator::Css("#tallies")).await.unwrap().send_keys("甲 70\n乙 66\n丙 60").await.unwrap();
    c.find(Locator::Css("#do-vote")).await.unwrap().click().await.unwrap();
    let refusal = c.wait().for_element(Locator::Css("#refusal")).await.unwrap().text().await.unwrap();
    assert!(refusal.contains("不予受理") && refusal.contains("F014"), "{refusal}");
    assert!(refusal.contains("at least 81 present needed"), "{refusal}");
    shot(&c, "refusal").await;
    assert_eq!(env.history("web-2").await.len(), before, "a refusal records nothing");
    c.close().await.unwrap();
    env.finish().await;
}
