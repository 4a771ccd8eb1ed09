//! The OCI images of `scripts/images.sh` through a real registry (Debian's `docker-registry`, the
//! CNCF distribution registry, on 127.0.0.1): pushed by the script, pulled back by digest with
//! `skopeo`, and checked for what a user gets: the controller runs from the image's own files
//! (chroot, as user 65532, no shell in it) and renders what the built binary renders; the
//! `.wasm` and `.so` are the built bytes; the real Envoy 1.40 loads the `.wasm` straight from
//! the registry's blob URL (with its sha256) and the filter counts real Redis traffic. Two
//! builds give the same digests, and every image reference in `deploy/` is one the script builds.
//!
//! Needs the release binaries (`scripts/test.sh` builds them before `cargo test`; the script is
//! run with `MELTEMI_IMAGES_BUILD=0`: cargo holds the target dir while tests run).

use meltemi_testkit::config::{bootstrap, Filter};
use meltemi_testkit::{
    artifacts, free_port, http_get, redis_cli, wait_for, workspace_root, Envoy, Process,
    RedisServer, TempDir,
};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The images the script builds: (repository under `meltemi/`, tag suffix, images.env name).
const IMAGES: [(&str, &str, &str); 4] = [
    ("controller", "", "MELTEMI_CONTROLLER_DIGEST"),
    ("wasm", "", "MELTEMI_WASM_DIGEST"),
    ("wasm", "-oci", "MELTEMI_WASM_OCI_DIGEST"),
    ("artifacts", "", "MELTEMI_ARTIFACTS_DIGEST"),
];

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup.d/images.sh installs the tools)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("UTF-8 output")
}

/// A real distribution registry on a free 127.0.0.1 port, filesystem storage in a temp dir,
/// plain HTTP; stopped by PID on drop.
struct Registry {
    _proc: Process,
    port: u16,
}

impl Registry {
    fn start(dir: &TempDir) -> Registry {
        let port = free_port();
        let config = dir.path().join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: '127.0.0.1:{port}'}}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&config);
        let proc = Process::spawn("docker-registry", cmd, dir.path().join("registry.log"))
            .expect("docker-registry (scripts/setup.d/images.sh installs it)");
        let up = wait_for(Duration::from_secs(10), || {
            matches!(http_get(port, "/v2/"), Ok((200, _))).then_some(())
        });
        assert!(up.is_some(), "registry up: {}", proc.log());
        Registry { _proc: proc, port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Runs `scripts/images.sh` into `out` on the built binaries, naming the images in `registry`
/// and pushing them there if `push`; its stdout and the `images.env` it wrote.
fn images_sh(out: &Path, registry: Option<&str>, push: bool) -> (String, BTreeMap<String, String>) {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("scripts/images.sh"))
        .env("MELTEMI_IMAGES_BUILD", "0")
        .env("MELTEMI_IMAGES_OUT", out)
        .env("CARGO_TARGET_DIR", artifacts::target_dir())
        .env("MELTEMI_REGISTRY_TLS_VERIFY", "false")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("MELTEMI_IMAGES_PUSH", if push { "1" } else { "0" })
        .env_remove("MELTEMI_REGISTRY");
    if let Some(r) = registry {
        cmd.env("MELTEMI_REGISTRY", r);
    }
    let text = stdout(&mut cmd);
    let env = fs::read_to_string(out.join("images.env"))
        .expect("images.env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (text, env)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("JSON")
}

/// `skopeo copy docker://REF dir:DIR`: the manifest and the blobs as the registry serves them.
fn pull(reference: &str, dir: &Path) -> serde_json::Value {
    run(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", dir.display())));
    json(&dir.join("manifest.json"))
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join(digest.trim_start_matches("sha256:"))
}

/// Unpacks the single tar+gzip layer of a pulled image into `root` (tar as root keeps modes).
fn unpack_single_layer(dir: &Path, manifest: &serde_json::Value, root: &Path) {
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    assert_eq!(
        layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{manifest}"
    );
    fs::create_dir_all(root).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(blob_path(dir, layers[0]["digest"].as_str().unwrap()))
        .arg("-C")
        .arg(root));
}

fn image_config(dir: &Path, manifest: &serde_json::Value) -> serde_json::Value {
    json(&blob_path(
        dir,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
}

/// A runnable image pulled by digest and unpacked: its config (checked: non-root, built at
/// SOURCE_DATE_EPOCH 0) and its root directory.
fn pull_unpacked(
    tmp: &TempDir,
    reg: &str,
    name: &str,
    digest: &str,
) -> (serde_json::Value, PathBuf) {
    let d = tmp.path().join(format!("pull-{name}"));
    let m = pull(&format!("{reg}/meltemi/{name}@{digest}"), &d);
    let cfg = image_config(&d, &m);
    assert_eq!(cfg["config"]["User"], "65532:65532", "{name}: {cfg}");
    assert_eq!(cfg["created"], "1970-01-01T00:00:00Z", "{name}: {cfg}");
    let root = tmp.path().join(format!("{name}-root"));
    unpack_single_layer(&d, &m, &root);
    (cfg, root)
}

fn assert_same_bytes(got: &Path, want: &Path) {
    let (g, w) = (fs::read(got).unwrap(), fs::read(want).unwrap());
    assert!(
        g == w,
        "{} ({} bytes) differs from the built {} ({} bytes)",
        got.display(),
        g.len(),
        want.display(),
        w.len()
    );
}

/// Runs `args` inside `root` as user 65532 (chroot: only the image's files are there).
fn in_image(root: &Path, args: &[&str]) -> String {
    stdout(
        Command::new("/usr/sbin/chroot")
            .arg("--userspec=65532:65532")
            .arg(root)
            .args(args)
            .env_clear(),
    )
}

fn parse_list(out: &Path) -> Vec<(String, String, String)> {
    fs::read_to_string(out.join("images.list"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[test]
fn images_push_pull_by_digest_run_and_envoy_loads_the_wasm_from_the_registry() {
    let tmp = TempDir::new("images").unwrap();
    let registry = Registry::start(&TempDir::new("registry").unwrap());
    let reg = registry.addr();
    let target = artifacts::target_dir();
    let built_meltemi = target.join("release/meltemi");
    let built_so = artifacts::module_path();
    let built_wasm = artifacts::wasm_path();

    let t = Instant::now();
    let (printed, env) = images_sh(&tmp.path().join("a"), Some(&reg), true);
    let build_push = t.elapsed();
    println!("{printed}scripts/images.sh build + push: {build_push:?}");
    for (name, suffix, var) in IMAGES {
        let digest = &env[var];
        let line = format!(
            "image: {reg}/meltemi/{name}@{digest}  (:{}{suffix}, ",
            env["MELTEMI_VERSION"]
        );
        assert!(printed.contains(&line), "{line} in:\n{printed}");
    }

    // Reproducible: a second build of the same binaries has the same digests.
    let t = Instant::now();
    let (_, again) = images_sh(&tmp.path().join("b"), None, false);
    println!("scripts/images.sh build only: {:?}", t.elapsed());
    for (_, _, var) in IMAGES {
        assert_eq!(env[var], again[var], "{var} differs between two builds");
    }

    // The controller: pulled by digest, run from its own files as the non-root user.
    let (cfg, root) = pull_unpacked(&tmp, &reg, "controller", &env["MELTEMI_CONTROLLER_DIGEST"]);
    assert_eq!(cfg["config"]["Entrypoint"][0], "/usr/local/bin/meltemi");
    assert!(!root.join("bin/sh").exists(), "no shell in the image");
    assert_same_bytes(&root.join("usr/local/bin/meltemi"), &built_meltemi);
    let version = in_image(&root, &["/usr/local/bin/meltemi", "--version"]);
    assert_eq!(
        version.trim(),
        format!("meltemi {}", env["MELTEMI_VERSION"])
    );
    // `meltemi render` of Aeraki's example manifests (the README's Dubbo traffic split, an
    // external Redis): the same EnvoyFilters from the image as from the built binaries.
    let aeraki = workspace_root().join("controller/testdata/aeraki");
    let scenarios: [&[&str]; 2] = [
        &[
            "metaprotocol-dubbo__serviceentry.yaml",
            "metaprotocol-dubbo__destinationrule.yaml",
            "metaprotocol-dubbo__traffic-split.yaml",
        ],
        &["redis__external-redis.yaml"],
    ];
    for (i, files) in scenarios.iter().enumerate() {
        let inside = format!("/tmp/aeraki-{i}");
        let outside = tmp.path().join(format!("aeraki-{i}"));
        for dir in [root.join(inside.trim_start_matches('/')), outside.clone()] {
            fs::create_dir_all(&dir).unwrap();
            for f in *files {
                fs::copy(aeraki.join(f), dir.join(f)).unwrap();
            }
        }
        let from_image = in_image(&root, &["/usr/local/bin/meltemi", "render", "-f", &inside]);
        let render = |bin: &Path| stdout(Command::new(bin).arg("render").arg("-f").arg(&outside));
        assert!(
            from_image.contains("kind: EnvoyFilter"),
            "{files:?}: {from_image}"
        );
        assert_eq!(
            from_image,
            render(&built_meltemi),
            "{files:?}: image vs the built release binary"
        );
        let debug = Path::new(env!("CARGO_BIN_EXE_meltemi"));
        assert_eq!(
            from_image,
            render(debug),
            "{files:?}: image vs this build's binary"
        );
    }

    // The artifacts image: its entrypoint copies the .so and the .wasm, the built bytes.
    let (cfg, root) = pull_unpacked(&tmp, &reg, "artifacts", &env["MELTEMI_ARTIFACTS_DIGEST"]);
    fs::create_dir_all(root.join("out")).unwrap();
    run(Command::new("chmod").arg("1777").arg(root.join("out")));
    let entry: Vec<&str> = cfg["config"]["Entrypoint"]
        .as_array()
        .unwrap()
        .iter()
        .chain(cfg["config"]["Cmd"].as_array().unwrap())
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(entry, ["/meltemi/install", "/out"]);
    let copied = in_image(&root, &entry);
    assert!(copied.contains("/out/libmeltemi.so"), "{copied}");
    assert_same_bytes(&root.join("out/libmeltemi.so"), &built_so);
    assert_same_bytes(&root.join("out/meltemi_wasm.wasm"), &built_wasm);

    // The compat variant Istio's WasmPlugin pulls: one tar+gzip layer with plugin.wasm.
    let d = tmp.path().join("pull-wasm");
    let m = pull(
        &format!("{reg}/meltemi/wasm@{}", env["MELTEMI_WASM_DIGEST"]),
        &d,
    );
    assert_eq!(m["annotations"]["module.wasm.image/variant"], "compat");
    let root = tmp.path().join("wasm-root");
    unpack_single_layer(&d, &m, &root);
    let files: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["plugin.wasm"]);
    assert_same_bytes(&root.join("plugin.wasm"), &built_wasm);

    // The oci variant: the raw module is a layer blob, the one Envoy fetches below.
    let d = tmp.path().join("pull-wasm-oci");
    let m = pull(
        &format!("{reg}/meltemi/wasm@{}", env["MELTEMI_WASM_OCI_DIGEST"]),
        &d,
    );
    let layer = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mediaType"] == "application/vnd.module.wasm.content.layer.v1+wasm")
        .unwrap_or_else(|| panic!("a wasm content layer: {m}"));
    let blob = layer["digest"].as_str().unwrap().to_string();
    assert_eq!(blob, env["MELTEMI_WASM_MODULE_BLOB"]);
    assert_same_bytes(&blob_path(&d, &blob), &built_wasm);

    // Envoy loads the module from the registry (vm_config.code.remote, sha256 checked by
    // Envoy) and the filter counts real traffic to a real redis-server.
    let redis = RedisServer::start().expect("redis-server");
    let listen = free_port();
    let hex = blob.trim_start_matches("sha256:");
    let local = format!(
        "code: {{ local: {{ filename: \"{}\" }} }}",
        built_wasm.display()
    );
    let remote = format!(
        "code: {{ remote: {{ http_uri: {{ uri: \"http://{reg}/v2/meltemi/wasm/blobs/{blob}\", cluster: registry, timeout: 10s }}, sha256: {hex}, retry_policy: {{ num_retries: 3 }} }} }}"
    );
    let wasm = Filter::Wasm(r#"{"protocol":"redis","stat_prefix":"fromregistry"}"#.into()).yaml();
    assert!(wasm.contains(&local), "{wasm}");
    let yaml = bootstrap(
        listen,
        &[
            Filter::Yaml(wasm.replace(&local, &remote)),
            Filter::TcpProxy("redis".into()),
        ],
        &[("redis", redis.port()), ("registry", registry.port)],
    );
    assert!(yaml.contains(&format!("/v2/meltemi/wasm/blobs/{blob}")));
    let envoy = Envoy::start(&yaml, &[]).expect("Envoy with the wasm from the registry");
    assert_eq!(redis_cli(listen, &["SET", "pulled", "yes"]).unwrap(), "OK");
    assert_eq!(redis_cli(listen, &["GET", "pulled"]).unwrap(), "yes");
    let name = |s: &str| format!("wasmcustom.redis.fromregistry.{s}");
    let got = envoy.wait_stat_at_least(&name("command.get.success"), 1, Duration::from_secs(5));
    assert_eq!(got, Some(1), "{}", envoy.log());
    assert_eq!(envoy.stat(&name("command.set.success")), Some(1));
    assert_eq!(envoy.stat(&name("cx_total")), Some(2));
    // The module came over HTTP from the registry cluster, once.
    assert_eq!(envoy.stat("cluster.registry.upstream_rq_200"), Some(1));
}

/// Every image reference in `deploy/` (manifests, Helm chart, Istio examples) names a repository
/// the script builds, by a digest placeholder the script fills in; filled in, each is exactly
/// an image the script printed.
#[test]
fn deploy_names_only_images_the_script_builds_pinned_by_digest() {
    let tmp = TempDir::new("images-deploy").unwrap();
    let out = tmp.path().join("out");
    let (_, env) = images_sh(&out, Some("registry.test:5000"), false);
    let built: Vec<String> = parse_list(&out)
        .into_iter()
        .map(|(name, _, digest)| format!("registry.test:5000/meltemi/{name}@{digest}"))
        .collect();
    let deploy = workspace_root().join("deploy");
    let mut files = Vec::new();
    let mut stack = vec![deploy.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            // Dashboards and scrape configs name no images (the script does not fill them).
            if p.is_dir() && p.file_name().is_some_and(|n| n == "grafana") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut seen = 0;
    for f in &files {
        let rel = f.strip_prefix(&deploy).unwrap();
        let text = fs::read_to_string(f).unwrap();
        let filled = fs::read_to_string(out.join("deploy").join(rel)).unwrap();
        for (raw, done) in text.lines().zip(filled.lines()) {
            let line = raw.trim_start().trim_start_matches("- ");
            let reference = line
                .strip_prefix("image: ")
                .or_else(|| line.strip_prefix("url: oci://"));
            let Some(reference) = reference else { continue };
            if rel.starts_with("helm") {
                assert!(
                    reference.contains(".Values.image.registry"),
                    "{}: {raw}",
                    rel.display()
                );
                continue;
            }
            seen += 1;
            let (repo, digest) = reference
                .split_once('@')
                .unwrap_or_else(|| panic!("{}: {raw}: pinned by digest", rel.display()));
            let name = repo
                .strip_prefix("${MELTEMI_REGISTRY}/meltemi/")
                .unwrap_or_else(|| {
                    panic!(
                        "{}: {raw}: ${{MELTEMI_REGISTRY}}/meltemi/<image>",
                        rel.display()
                    )
                });
            let (_, _, var) = IMAGES
                .iter()
                .find(|(n, _, v)| *n == name && digest == format!("${{{v}}}"))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: {raw}: not an image scripts/images.sh builds",
                        rel.display()
                    )
                });
            let done = done.trim_start().trim_start_matches("- ");
            let done = done
                .strip_prefix("image: ")
                .or_else(|| done.strip_prefix("url: oci://"))
                .unwrap();
            assert!(
                built.iter().any(|b| b == done),
                "{}: filled in {done}, built {built:?}",
                rel.display()
            );
            assert_eq!(
                done,
                format!("registry.test:5000/meltemi/{name}@{}", env[*var])
            );
        }
    }
    // deployment.yaml, wasmplugin.yaml, sidecar-module.yaml.
    assert!(seen >= 3, "image references found in deploy/: {seen}");
    // The Helm chart: repository and registry/digest values, the repository one we build.
    let values = fs::read_to_string(deploy.join("helm/meltemi/values.yaml")).unwrap();
    let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(&values).unwrap();
    assert_eq!(values["image"]["repository"], "meltemi/controller");
    assert_eq!(
        values["image"]["digest"], "",
        "set at install: --set image.digest=..."
    );
    assert!(built.iter().any(|b| b.contains("/meltemi/controller@")));
}
