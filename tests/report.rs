//! The HTML reports in a real browser: headless Chromium renders `imcc train --report` and
//! `imcc sweep --report`, its DOM holds the expected charts, and its screenshot is not blank.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imcc-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn run(args: &[&std::ffi::OsStr]) {
    let o = Command::new(env!("CARGO_BIN_EXE_imcc")).args(args).output().expect("imcc runs");
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// Chromium, or why not.
fn chromium() -> Result<PathBuf, String> {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(o) = Command::new(name).arg("--version").output()
            && o.status.success()
        {
            return Ok(PathBuf::from(name));
        }
    }
    Err("no `chromium` on PATH (Debian package `chromium`)".into())
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The DOM after rendering, and a screenshot's pixels (RGBA).
fn render(browser: &Path, page: &Path, dir: &Path) -> (String, Vec<u8>) {
    let url = format!("file://{}", page.display());
    let dom = headless(browser, &dir.join("profile-dom")).arg("--dump-dom").arg(&url).output().expect("chromium runs");
    assert!(dom.status.success(), "chromium --dump-dom: {}", String::from_utf8_lossy(&dom.stderr));
    let shot = dir.join("shot.png");
    let o = headless(browser, &dir.join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1360,1400")
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(o.status.success() && shot.exists(), "chromium --screenshot: {}", String::from_utf8_lossy(&o.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).expect("png")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf.chunks(3).flat_map(|c| [c[0], c[1], c[2], 255]).collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (String::from_utf8_lossy(&dom.stdout).to_string(), rgba)
}

/// A rendered page with charts: many non-white pixels, in several colours.
fn assert_not_blank(rgba: &[u8]) {
    let px = rgba.len() / 4;
    let inked = rgba.chunks(4).filter(|p| p[0] < 240 || p[1] < 240 || p[2] < 240).count();
    let mut colours: Vec<[u8; 3]> = rgba.chunks(4).map(|p| [p[0] & 0xf0, p[1] & 0xf0, p[2] & 0xf0]).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(inked * 50 > px, "the screenshot is almost blank: {inked} of {px} pixels inked");
    assert!(colours.len() >= 6, "the screenshot has {} colours: no charts drawn", colours.len());
}

/// The `<figure class="plot" id="ID">` elements of a DOM, each with its SVG's text.
fn figures(dom: &str) -> Vec<(String, String)> {
    dom.split("<figure class=\"plot\" id=\"")
        .skip(1)
        .map(|rest| {
            let (id, body) = rest.split_once('"').expect("an id");
            let body = body.split("</figure>").next().unwrap_or("");
            (id.to_string(), body.to_string())
        })
        .collect()
}

#[test]
fn reports_render_in_a_real_browser_with_their_charts() {
    let browser = match chromium() {
        Ok(b) => b,
        Err(why) => {
            assert!(std::env::var_os("IMCC_REQUIRE_CHROMIUM").is_none(), "IMCC_REQUIRE_CHROMIUM is set but {why}");
            eprintln!("NOT TESTED: {why}; `.ci/run` installs it");
            return;
        }
    };
    let d = tempdir("browser");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_mlp.imc");
    let train = d.join("train");
    run(&[
        "train".as_ref(),
        example.as_os_str(),
        "--epochs".as_ref(),
        "2".as_ref(),
        "--limit".as_ref(),
        "256".as_ref(),
        "--report".as_ref(),
        train.as_os_str(),
    ]);
    let (dom, shot) = render(&browser, &train.join("index.html"), &d);
    let figs = figures(&dom);
    let ids: Vec<&str> = figs.iter().map(|(i, _)| i.as_str()).collect();
    for want in ["loss", "accuracy", "energy-layers-full", "energy-components", "adc-full", "clipping-full"] {
        assert!(ids.contains(&want), "the training report lacks `{want}`: {ids:?}");
    }
    for (id, body) in &figs {
        assert!(
            body.contains("<svg") && (body.contains("<polyline") || body.contains("<rect") || body.contains("<path")),
            "{id} draws nothing"
        );
    }
    let (_, acc) = figs.iter().find(|(i, _)| i == "accuracy").expect("accuracy");
    for text in ["Test accuracy per epoch", "epoch", "test accuracy (%)", "full", "two_level", "f32_reference"] {
        assert!(acc.contains(text), "the accuracy chart lacks `{text}`");
    }
    assert_not_blank(&shot);

    let file = d.join("s.imc");
    std::fs::write(
        &file,
        format!(
            "import \"{}\";\nsweep noise {{ train = [full, two_level]; hardware {{ noise {{ sigma_lsb = [0.02, 0.5]; }} }} seed = [1, 2]; limit = 128; epochs = 1; }}\n",
            example.display()
        ),
    )
    .expect("write");
    let (out, report) = (d.join("out"), d.join("sweep"));
    run(&[
        "sweep".as_ref(),
        file.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    let (dom, shot) = render(&browser, &report.join("index.html"), &d);
    let figs = figures(&dom);
    let ids: Vec<&str> = figs.iter().map(|(i, _)| i.as_str()).collect();
    for want in ["accuracy-hardware-noise-sigma_lsb", "pareto"] {
        assert!(ids.contains(&want), "the sweep report lacks `{want}`: {ids:?}");
    }
    let (_, pareto) = figs.iter().find(|(i, _)| i == "pareto").expect("pareto");
    assert!(pareto.contains("Pareto front") && pareto.contains("training energy per sample (nJ)"));
    assert!(dom.matches("<tr>").count() >= 9, "the results table has a row per point");
    assert_not_blank(&shot);
    let _ = std::fs::remove_dir_all(&d);
}
