//! `cargo xtask test --step image`: the repository's `Dockerfile` built and
//! its image run as the services run in production.
//!
//! No image registry is reachable here, so the base images the Dockerfile's
//! FROM lines name are made locally, under exactly those names: Debian from
//! `debootstrap` (imported with `docker import`), the Rust and Node stages
//! from that plus this machine's own toolchains (which must be the versions
//! the tags name). An image already present under its tag is kept, so a
//! second run only rebuilds what changed. Then the unchanged Dockerfile is
//! built (`runtime` -> `haven:local`, `anvil` -> `haven-anvil:local`, the
//! tags docker-compose.yml uses), and every service runs in its own container
//! (`--network host`, read-only, no capabilities: compose's hardening)
//! against the local PostgreSQL and RabbitMQ and an anvil started here, after
//! `migrate up` and `haven-deploy` ran from the same image. Checked: every
//! `/health` answers 200, every container runs as a non-root user and its
//! HEALTHCHECK turns `healthy`. Sizes, build times and results go to the
//! console and to `target/image/latest.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::console::{Color, Console};
use crate::infra::{Servers, find_program, wait_until};
use crate::stack::{self, Chain, DevSecrets, LogFormat, Plan};
use crate::step::{StepError, StepResult};
use crate::supervisor::{Supervisor, Wake};
use crate::up::{self, AnvilOptions, Outcome};
use crate::workspace::Workspace;
use crate::{bench, npm};

/// The Dockerfile's stage with the services (its last stage) and its tag
/// (docker-compose.yml's default `HAVEN_IMAGE`).
const RUNTIME_TARGET: &str = "runtime";
const RUNTIME_TAG: &str = "haven:local";
/// The local chain's stage and its tag (compose's `HAVEN_ANVIL_IMAGE`).
const ANVIL_TARGET: &str = "anvil";
const ANVIL_TAG: &str = "haven-anvil:local";
/// Where `debootstrap` downloads Debian from.
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
/// Debian's directory of locally added CA certificates. Copied into the
/// base images: a machine whose HTTPS goes through a proxy with its own CA
/// needs it inside the build containers too (crates.io, npm).
const LOCAL_CA_DIR: &str = "/usr/local/share/ca-certificates";
/// Label on every base image made here, so nobody mistakes it for the
/// registry's.
const LOCAL_LABEL: &str = "org.haven.local-base=made by cargo xtask test --step image";
/// Database (dropped and made again each run) and broker namespace of the
/// containers.
const DATABASE: &str = "haven_image_check";
const AMQP_NAMESPACE: &str = "haven-image-check";
/// Prefix of the containers' names; leftovers of a killed run are removed.
const CONTAINER_PREFIX: &str = "haven-image-check-";
/// The flags compose's `x-haven` gives every HAVEN container.
const HARDENING: [&str; 7] = [
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges:true",
];
/// The HEALTHCHECK's first probe runs one interval (10s) after the start;
/// three failures in a row make `unhealthy`.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(120);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);
/// Name the payout stand-in's container has in the console and the report.
const STAND_IN: &str = "payout-stand-in";

/// The step: base images, build, run, report.
pub(crate) fn step(ws: &Workspace, servers: &Servers, console: Console) -> StepResult {
    let out = ws.target_dir.join("image");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut report = Report::default();
    let outcome = check(ws, servers, &out, &mut report, console);
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(err) => Some(format!("{err:#}")),
    };
    report.failure.clone_from(&failure);
    let text = report.markdown();
    let path = out.join("latest.md");
    fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    for line in report.summary() {
        console.info(&line);
    }
    console.info(&format!("report: {}", path.display()));
    match failure {
        None => Ok(()),
        Some(why) => Err(StepError::Failed(why)),
    }
}

/// `Ok(Err(why))`: a check failed; `Err`: the step could not run.
fn check(
    ws: &Workspace,
    servers: &Servers,
    out: &Path,
    report: &mut Report,
    console: Console,
) -> anyhow::Result<Result<(), String>> {
    report.docker = ensure_docker(out, console)?;
    let dockerfile =
        fs::read_to_string(ws.root.join("Dockerfile")).context("reading Dockerfile")?;
    let parsed = parse_dockerfile(&dockerfile)?;
    for target in [RUNTIME_TARGET, ANVIL_TARGET] {
        if !parsed.stages.iter().any(|s| s == target) {
            bail!(
                "the Dockerfile has no stage `{target}` (stages: {:?})",
                parsed.stages
            );
        }
    }
    for image in base_images_in_order(&parsed.bases)? {
        let made = ensure_base(&image, out, console)?;
        report.bases.push((image.tag(), made));
    }

    for (target, tag) in [(RUNTIME_TARGET, RUNTIME_TAG), (ANVIL_TARGET, ANVIL_TAG)] {
        console.info(&format!("docker build --target {target} -t {tag} ."));
        let started = Instant::now();
        let mut build = docker();
        build
            .args(["build", "--target", target, "-t", tag, "."])
            .current_dir(&ws.root);
        let status = build
            .stdin(Stdio::null())
            .status()
            .context("running docker build")?;
        let took = started.elapsed();
        if !status.success() {
            return Ok(Err(format!(
                "docker build --target {target} failed ({status}) after {:.0}s",
                took.as_secs_f64()
            )));
        }
        report.builds.push((tag.to_owned(), took));
        report.sizes.push((tag.to_owned(), image_size(tag)?));
    }

    let anvil_user = docker_output(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}",
        ANVIL_TAG,
    ])?;
    if let Err(why) = non_root(&anvil_user, None) {
        return Ok(Err(format!("{ANVIL_TAG}: {why}")));
    }
    let version = docker_output(&["run", "--rm", ANVIL_TAG, "--version"])?;
    console.info(&format!("{ANVIL_TAG}: runs as {anvil_user}, {version}"));

    run_services(ws, servers, out, report, console)
}

// ------------------------------------------------------------- Dockerfile --

/// What the Dockerfile's FROM lines say.
#[derive(Debug, Default, PartialEq, Eq)]
struct Dockerfile {
    /// Images from outside, with the global ARG defaults substituted, in order.
    bases: Vec<String>,
    /// The stages' names (`FROM ... AS name`), in order.
    stages: Vec<String>,
}

/// Reads the FROM lines (with their `\` continuations) and the ARGs before
/// the first FROM, whose defaults the FROM lines may use.
fn parse_dockerfile(text: &str) -> anyhow::Result<Dockerfile> {
    let mut args: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut parsed = Dockerfile::default();
    let mut seen_from = false;
    for line in logical_lines(text) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("ARG") && !seen_from {
            for word in words {
                match word.split_once('=') {
                    Some((name, value)) => {
                        args.insert(name.to_owned(), Some(value.trim_matches('"').to_owned()))
                    }
                    None => args.insert(word.to_owned(), None),
                };
            }
        } else if instruction.eq_ignore_ascii_case("FROM") {
            seen_from = true;
            let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
            let Some(image) = rest.first() else {
                bail!("Dockerfile: `{line}` names no image");
            };
            let image =
                substitute(image, &args).with_context(|| format!("Dockerfile: `{line}`"))?;
            let own_stage = parsed.stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
            if !own_stage && image != "scratch" && !parsed.bases.contains(&image) {
                parsed.bases.push(image);
            }
            if let [_, keyword, name] = rest[..]
                && keyword.eq_ignore_ascii_case("AS")
            {
                parsed.stages.push(name.to_ascii_lowercase());
            }
        }
    }
    Ok(parsed)
}

/// Instructions one per item: comments and blank lines dropped,
/// backslash-continued lines joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        lines.push(current);
    }
    lines
}

/// `${NAME}` and `$NAME` replaced by the ARG defaults.
fn substitute(word: &str, args: &BTreeMap<String, Option<String>>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .with_context(|| format!("unclosed ${{ in {word}"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match args.get(name) {
            Some(Some(value)) => out.push_str(value),
            Some(None) => bail!("ARG {name} has no default"),
            None => bail!("{name} is no ARG declared before the first FROM"),
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

// ------------------------------------------------------------ base images --

/// A base image this step knows how to make.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Base {
    /// `debian:<release>-slim`: debootstrap's minbase.
    Debian { release: String },
    /// `rust:<version>-slim-<release>`: Debian plus this machine's toolchain.
    Rust { version: String, release: String },
    /// `node:<major>-<release>-slim`: Debian plus this machine's node and npm.
    Node { major: String, release: String },
}

impl Base {
    /// Recognises a FROM image name.
    fn parse(image: &str) -> anyhow::Result<Self> {
        let unknown = || {
            anyhow::anyhow!(
                "no local recipe for the base image {image} (known: debian:<release>-slim, \
                 rust:<version>-slim-<release>, node:<major>-<release>-slim)"
            )
        };
        let (repository, tag) = image.rsplit_once(':').ok_or_else(unknown)?;
        let repository = repository
            .trim_start_matches("docker.io/")
            .trim_start_matches("library/");
        let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase());
        let version = |s: &str| {
            !s.is_empty()
                && s.starts_with(|c: char| c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_digit() || c == '.')
        };
        match repository {
            "debian" => {
                let release = tag.strip_suffix("-slim").ok_or_else(unknown)?;
                word(release)
                    .then(|| Base::Debian {
                        release: release.to_owned(),
                    })
                    .ok_or_else(unknown)
            }
            "rust" => {
                let (v, release) = tag.split_once("-slim-").ok_or_else(unknown)?;
                (version(v) && word(release))
                    .then(|| Base::Rust {
                        version: v.to_owned(),
                        release: release.to_owned(),
                    })
                    .ok_or_else(unknown)
            }
            "node" => {
                let middle = tag.strip_suffix("-slim").ok_or_else(unknown)?;
                let (major, release) = middle.split_once('-').ok_or_else(unknown)?;
                (version(major) && word(release))
                    .then(|| Base::Node {
                        major: major.to_owned(),
                        release: release.to_owned(),
                    })
                    .ok_or_else(unknown)
            }
            _ => Err(unknown()),
        }
    }

    /// The tag it is made under (the FROM line's name, in its usual spelling).
    fn tag(&self) -> String {
        match self {
            Base::Debian { release } => format!("debian:{release}-slim"),
            Base::Rust { version, release } => format!("rust:{version}-slim-{release}"),
            Base::Node { major, release } => format!("node:{major}-{release}-slim"),
        }
    }

    fn release(&self) -> &str {
        match self {
            Base::Debian { release } | Base::Rust { release, .. } | Base::Node { release, .. } => {
                release
            }
        }
    }
}

/// The bases to make, Debian first: the Rust and Node stages are built on
/// it, so their release's Debian image is made even when no FROM names it.
fn base_images_in_order(names: &[String]) -> anyhow::Result<Vec<Base>> {
    let named: Vec<Base> = names
        .iter()
        .map(|n| Base::parse(n))
        .collect::<Result<_, _>>()?;
    let mut ordered: Vec<Base> = Vec::new();
    for base in &named {
        let debian = Base::Debian {
            release: base.release().to_owned(),
        };
        if !ordered.contains(&debian) {
            ordered.push(debian);
        }
    }
    for base in named {
        if !ordered.contains(&base) {
            ordered.push(base);
        }
    }
    Ok(ordered)
}

/// Makes `base` unless its tag exists; true when it was made now.
fn ensure_base(base: &Base, out: &Path, console: Console) -> anyhow::Result<bool> {
    let tag = base.tag();
    if image_exists(&tag) {
        console.info(&format!("base image {tag}: present"));
        return Ok(false);
    }
    let started = Instant::now();
    match base {
        Base::Debian { release } => make_debian(release, &tag, out, console)?,
        Base::Rust { version, release } => make_rust(version, release, &tag, out, console)?,
        Base::Node { major, release } => make_node(major, release, &tag, out, console)?,
    }
    console.info(&format!(
        "base image {tag}: made in {:.0}s ({:.1} MB)",
        started.elapsed().as_secs_f64(),
        megabytes(image_size(&tag)?)
    ));
    Ok(true)
}

/// `debian:<release>-slim` from a debootstrap minbase rootfs (kept as a tar
/// in target/image, so making the image again needs no download).
fn make_debian(release: &str, tag: &str, out: &Path, console: Console) -> anyhow::Result<()> {
    let tar = out.join(format!("debian-{release}-rootfs.tar"));
    if !tar.is_file() {
        debootstrap(release, &tar, out, console)?;
    }
    console.info(&format!("docker import {} {tag}", tar.display()));
    let mut import = docker();
    import
        .args(["import", "--change", "CMD [\"bash\"]", "--change"])
        .arg(format!("LABEL {}", quoted_label()))
        .arg(&tar)
        .arg(tag);
    run_quiet(import)
}

fn debootstrap(release: &str, tar: &Path, out: &Path, console: Console) -> anyhow::Result<()> {
    let uid = fs::metadata("/proc/self")
        .context("reading /proc/self")?
        .uid();
    if uid != 0 {
        bail!("debootstrap needs root (it makes device files and chroots)");
    }
    let debootstrap = match find_program("debootstrap") {
        Some(path) => path,
        None => {
            console.info("debootstrap is missing: apt-get install -y debootstrap");
            let mut apt = Command::new("apt-get");
            apt.args(["install", "-y", "--no-install-recommends", "debootstrap"])
                .env("DEBIAN_FRONTEND", "noninteractive");
            run_quiet(apt)?;
            find_program("debootstrap").context("debootstrap is still missing after apt-get")?
        }
    };
    let rootfs = out.join(format!("rootfs-{release}"));
    remove_rootfs(&rootfs)?;
    let log = out.join("debootstrap.log");
    console.info(&format!(
        "debootstrap --variant=minbase {release} (log: {})",
        log.display()
    ));
    let mut command = Command::new(debootstrap);
    command
        .args(["--variant=minbase", release])
        .arg(&rootfs)
        .arg(DEBIAN_MIRROR);
    run_logged(command, &log)?;
    slim_rootfs(&rootfs)?;
    let cas = local_cas();
    if !cas.is_empty() {
        let dir = rootfs.join(LOCAL_CA_DIR.trim_start_matches('/'));
        fs::create_dir_all(&dir)?;
        for ca in &cas {
            if let Some(name) = ca.file_name() {
                fs::copy(ca, dir.join(name))
                    .with_context(|| format!("copying {}", ca.display()))?;
            }
        }
        console.info(&format!(
            "rootfs: {} local CA certificate(s) from {LOCAL_CA_DIR}",
            cas.len()
        ));
    }
    let partial = tar.with_extension("tar.partial");
    let mut pack = Command::new("tar");
    pack.arg("--numeric-owner")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&partial)
        .arg(".");
    run_quiet(pack)?;
    fs::rename(&partial, tar).with_context(|| format!("renaming to {}", tar.display()))?;
    remove_rootfs(&rootfs)
}

/// The apt and dpkg settings of Docker's official Debian images (written by
/// debuerreotype): no package caches kept, no translations, and for the
/// slim variant no documentation, manuals or locales installed.
const SLIM_CONFIG: [(&str, &str); 5] = [
    (
        "etc/apt/apt.conf.d/docker-clean",
        "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n\
         APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n\
         Dir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n",
    ),
    (
        "etc/apt/apt.conf.d/docker-no-languages",
        "Acquire::Languages \"none\";\n",
    ),
    (
        "etc/apt/apt.conf.d/docker-gzip-indexes",
        "Acquire::GzipIndexes \"true\";\n",
    ),
    (
        "etc/apt/apt.conf.d/docker-autoremove-suggests",
        "Apt::AutoRemove::SuggestsImportant \"false\";\n",
    ),
    (
        "etc/dpkg/dpkg.cfg.d/docker",
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n\
         path-exclude /usr/share/info/*\npath-exclude /usr/share/linda/*\n\
         path-exclude /usr/share/lintian/overrides/*\npath-exclude /usr/share/locale/*\n\
         path-exclude /usr/share/man/*\n",
    ),
];

/// A debootstrap rootfs made like `debian:<release>-slim`: [`SLIM_CONFIG`]
/// written, and what it excludes, the package caches and lists removed.
fn slim_rootfs(rootfs: &Path) -> anyhow::Result<()> {
    for (path, text) in SLIM_CONFIG {
        let path = rootfs.join(path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let empty = [
        "usr/share/info",
        "usr/share/linda",
        "usr/share/lintian/overrides",
        "usr/share/locale",
        "usr/share/man",
        "var/cache/apt/archives",
        "var/lib/apt/lists",
    ];
    for dir in empty {
        let dir = rootfs.join(dir);
        if dir.is_dir() {
            remove_contents(&dir, |_| false)?;
        }
    }
    let docs = rootfs.join("usr/share/doc");
    if docs.is_dir() {
        remove_contents(&docs, |path| {
            // usr/share/doc/<package>/copyright stays (and its directory).
            path.parent()
                .is_some_and(|p| p.parent() == Some(docs.as_path()))
                && path.file_name().is_some_and(|n| n == "copyright")
        })?;
    }
    for bin in ["pkgcache.bin", "srcpkgcache.bin"] {
        let _ = fs::remove_file(rootfs.join("var/cache/apt").join(bin));
    }
    Ok(())
}

/// Removes everything under `dir` except the files `keep` accepts (and the
/// directories holding them). Symlinks are removed, never followed.
fn remove_contents(dir: &Path, keep: impl Fn(&Path) -> bool + Copy) -> anyhow::Result<bool> {
    let mut kept_any = false;
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            if remove_contents(&path, keep)? {
                kept_any = true;
            } else {
                fs::remove_dir(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        } else if keep(&path) {
            kept_any = true;
        } else {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(kept_any)
}

/// Removes a rootfs, unmounting what an interrupted debootstrap left mounted.
fn remove_rootfs(rootfs: &Path) -> anyhow::Result<()> {
    if !rootfs.exists() {
        return Ok(());
    }
    for mount in ["proc", "sys"] {
        let _ = Command::new("umount")
            .arg(rootfs.join(mount))
            .stderr(Stdio::null())
            .status();
    }
    fs::remove_dir_all(rootfs).with_context(|| format!("removing {}", rootfs.display()))
}

/// The `.crt` files of [`LOCAL_CA_DIR`], sorted.
fn local_cas() -> Vec<PathBuf> {
    let mut cas: Vec<PathBuf> = fs::read_dir(LOCAL_CA_DIR)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "crt"))
                .collect()
        })
        .unwrap_or_default();
    cas.sort();
    cas
}

/// `rust:<version>-slim-<release>`: what the official image holds (gcc,
/// libc6-dev, ca-certificates; cargo and rustc on PATH; `CARGO_HOME` for
/// `cargo install`), with this machine's toolchain.
fn make_rust(
    version: &str,
    release: &str,
    tag: &str,
    out: &Path,
    console: Console,
) -> anyhow::Result<()> {
    let host = command_output(Command::new("rustc").arg("--version"))?;
    let host_version = host
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    if !version_matches(version, &host_version) {
        bail!("{tag} needs Rust {version}, but this machine's rustc is {host_version}");
    }
    let sysroot = PathBuf::from(command_output(
        Command::new("rustc").args(["--print", "sysroot"]),
    )?);
    let context = fresh_dir(&out.join(tag.replace(':', "-")))?;
    let toolchain = context.join("toolchain");
    fs::create_dir_all(&toolchain)?;
    // Everything but share/ (documentation: most of the size).
    for part in ["bin", "lib", "libexec", "etc"] {
        let from = sysroot.join(part);
        if from.exists() {
            let mut copy = Command::new("cp");
            copy.arg("-a").arg(&from).arg(&toolchain);
            run_quiet(copy)?;
        }
    }
    console.info(&format!(
        "docker build -t {tag}: Debian {release} + {}",
        sysroot.display()
    ));
    build_stage(
        &context,
        tag,
        &rust_stage_dockerfile(release, &host_version),
    )
}

/// Writes `dockerfile` into `context`, builds it as `tag` and removes the
/// context.
fn build_stage(context: &Path, tag: &str, dockerfile: &str) -> anyhow::Result<()> {
    fs::write(context.join("Dockerfile"), dockerfile)?;
    let mut build = docker();
    build
        .args(["build", "-q", "-t", tag, "."])
        .current_dir(context);
    run_quiet(build)?;
    fs::remove_dir_all(context).with_context(|| format!("removing {}", context.display()))
}

fn rust_stage_dockerfile(release: &str, rust_version: &str) -> String {
    format!(
        r#"# Made by `cargo xtask test --step image`: a local stand-in for the
# registry's rust image, with this machine's toolchain.
FROM debian:{release}-slim
LABEL {label}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY toolchain/ /usr/local/rust/
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUST_VERSION={rust_version}
RUN mkdir -p /usr/local/cargo/bin && rustc --version && cargo --version
"#,
        label = quoted_label()
    )
}

/// `node:<major>-<release>-slim`: node and npm in /usr/local, the `node`
/// user (uid 1000) as in the official image, with this machine's node.
fn make_node(
    major: &str,
    release: &str,
    tag: &str,
    out: &Path,
    console: Console,
) -> anyhow::Result<()> {
    let host_version = command_output(Command::new("node").arg("--version"))?;
    let host_version = host_version.trim_start_matches('v').to_owned();
    if !version_matches(major, &host_version) {
        bail!("{tag} needs Node {major}, but this machine's node is {host_version}");
    }
    let node = find_program("node")
        .context("node is not on PATH")?
        .canonicalize()
        .context("resolving node")?;
    let npm = PathBuf::from(command_output(Command::new("npm").args(["root", "-g"]))?).join("npm");
    if !npm.join("bin").join("npm-cli.js").is_file() {
        bail!("npm is not where `npm root -g` says ({})", npm.display());
    }
    let context = fresh_dir(&out.join(tag.replace(':', "-")))?;
    fs::copy(&node, context.join("node")).with_context(|| format!("copying {}", node.display()))?;
    let mut copy = Command::new("cp");
    copy.arg("-a").arg(&npm).arg(context.join("npm"));
    run_quiet(copy)?;
    let cas = local_cas();
    let mut bundle = String::new();
    for ca in &cas {
        bundle.push_str(
            &fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?,
        );
        bundle.push('\n');
    }
    if !cas.is_empty() {
        fs::write(context.join("local-ca.pem"), bundle)?;
    }
    console.info(&format!(
        "docker build -t {tag}: Debian {release} + {} and {}",
        node.display(),
        npm.display()
    ));
    build_stage(
        &context,
        tag,
        &node_stage_dockerfile(release, &host_version, !cas.is_empty()),
    )
}

fn node_stage_dockerfile(release: &str, node_version: &str, local_ca: bool) -> String {
    // npm trusts node's bundled CAs only; NODE_EXTRA_CA_CERTS adds the
    // machine's own (see LOCAL_CA_DIR).
    let (ca_copy, ca_env) = if local_ca {
        (
            "COPY local-ca.pem /usr/local/share/haven-local-ca.pem\n",
            " \\\n    NODE_EXTRA_CA_CERTS=/usr/local/share/haven-local-ca.pem",
        )
    } else {
        ("", "")
    };
    format!(
        r#"# Made by `cargo xtask test --step image`: a local stand-in for the
# registry's node image, with this machine's node and npm.
FROM debian:{release}-slim
LABEL {label}
RUN groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
COPY node /usr/local/bin/node
COPY npm/ /usr/local/lib/node_modules/npm/
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
{ca_copy}ENV NODE_VERSION={node_version}{ca_env}
CMD ["node"]
"#,
        label = quoted_label()
    )
}

/// `key="value"` of [`LOCAL_LABEL`].
fn quoted_label() -> String {
    let (key, value) = LOCAL_LABEL.split_once('=').unwrap_or((LOCAL_LABEL, ""));
    format!("{key}=\"{value}\"")
}

/// Whether the machine's `host` version is the one a tag names: `1.95`
/// matches `1.95.0` and `1.95`, not `1.9.5` or `1.950`.
fn version_matches(wanted: &str, host: &str) -> bool {
    host == wanted
        || host
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn fresh_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.to_owned())
}

// ----------------------------------------------------------------- docker --

/// The docker CLI. The classic builder: it takes the FROM images from the
/// local store and ignores the `# syntax=` line, where BuildKit would pull
/// the frontend and check every base image against its registry.
fn docker() -> Command {
    let mut command = Command::new("docker");
    command.env("DOCKER_BUILDKIT", "0");
    command
}

/// The daemon's version; starts `dockerd` when it is installed and down.
fn ensure_docker(out: &Path, console: Console) -> anyhow::Result<String> {
    let server_version = || docker_output(&["version", "--format", "{{.Server.Version}}"]);
    if let Ok(version) = server_version() {
        return Ok(version);
    }
    if find_program("docker").is_none() {
        bail!("docker is not installed (Debian: apt-get install docker.io)");
    }
    let dockerd = find_program("dockerd")
        .context("the docker daemon does not answer and dockerd is not installed")?;
    let log = out.join("dockerd.log");
    console.info(&format!(
        "docker: the daemon does not answer; starting {} (log: {})",
        dockerd.display(),
        log.display()
    ));
    // Detached through sh, in its own process group: it keeps running
    // after xtask, like the PostgreSQL and RabbitMQ it starts.
    let status = Command::new("sh")
        .args(["-c", "nohup \"$0\" >\"$1\" 2>&1 </dev/null &"])
        .arg(&dockerd)
        .arg(&log)
        .process_group(0)
        .status()
        .context("starting dockerd")?;
    if !status.success() {
        bail!("starting dockerd failed ({status})");
    }
    wait_until(Duration::from_secs(60), || server_version().is_ok())
        .with_context(|| format!("dockerd did not answer (see {})", log.display()))?;
    server_version()
}

fn image_exists(tag: &str) -> bool {
    docker()
        .args(["image", "inspect", tag])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Bytes, as `docker images` counts them.
fn image_size(tag: &str) -> anyhow::Result<u64> {
    let text = docker_output(&["image", "inspect", "--format", "{{.Size}}", tag])?;
    text.parse()
        .with_context(|| format!("size of {tag}: {text:?}"))
}

fn megabytes(bytes: u64) -> f64 {
    // docker's own unit (decimal MB); precision does not matter here.
    #[allow(clippy::cast_precision_loss)]
    let bytes = bytes as f64;
    bytes / 1e6
}

fn docker_output(args: &[&str]) -> anyhow::Result<String> {
    let mut command = docker();
    command.args(args);
    command_output(&mut command)
}

/// Trimmed stdout; a failure carries stderr.
fn command_output(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} {:?} failed ({}): {}",
            command.get_program(),
            command.get_args().collect::<Vec<_>>(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs a command, showing its output only when it fails.
fn run_quiet(mut command: Command) -> anyhow::Result<()> {
    command_output(&mut command).map(drop)
}

/// Runs a command with its output in `log`; a failure quotes the log's end.
fn run_logged(mut command: Command, log: &Path) -> anyhow::Result<()> {
    let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        bail!(
            "{:?} failed ({status}); end of {}:\n{}",
            command.get_program(),
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

/// `command` (a HAVEN binary with its environment) as a container of
/// [`RUNTIME_TAG`] on the host network, with compose's hardening. The
/// values travel in the docker CLI's environment (`-e NAME`), never on its
/// command line, where `ps` would show the secrets.
fn in_container(command: &Command, name: &str) -> Command {
    let mut docker = docker();
    docker
        .args(["run", "--rm", "--network", "host", "--name"])
        .arg(format!("{CONTAINER_PREFIX}{name}"))
        .args(HARDENING);
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            docker.arg("-e").arg(key).env(key, value);
        }
    }
    let program = Path::new(command.get_program());
    docker
        .arg(RUNTIME_TAG)
        .arg(program.file_name().unwrap_or(program.as_os_str()))
        .args(command.get_args());
    docker
}

/// Removes this step's containers (a killed run's leftovers, or this run's).
fn remove_containers() {
    let Ok(names) = docker_output(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^{CONTAINER_PREFIX}"),
        "--format",
        "{{.Names}}",
    ]) else {
        return;
    };
    for name in names.lines().filter(|n| !n.is_empty()) {
        let _ = docker_output(&["rm", "-f", name]);
    }
}

// ---------------------------------------------------------- the containers --

/// Database, anvil, `migrate up` and `haven-deploy` in containers, the payout
/// stand-in and the five services in containers; then the checks.
fn run_services(
    ws: &Workspace,
    servers: &Servers,
    out: &Path,
    report: &mut Report,
    console: Console,
) -> anyhow::Result<Result<(), String>> {
    servers.ensure(&ws.dev_dir(), console)?;
    let anvil = npm::ensure(&ws.root, console)?.anvil();
    let database_url = fresh_database(&servers.postgres_url)?;
    remove_containers();

    let ports = free_ports::<7>()?;
    let [.., anvil_port, stand_in_port] = ports;
    let services = Plan::services_on(
        [ports[0], ports[1], ports[2], ports[3], ports[4]],
        &[("anvil", anvil_port), (STAND_IN, stand_in_port)],
    )?;
    let secrets = DevSecrets::generate();
    let mut plan = Plan {
        services,
        http_host: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        database_url: database_url.clone(),
        amqp_url: servers.amqp_url.clone(),
        amqp_namespace: AMQP_NAMESPACE.to_owned(),
        log_format: LogFormat::Json,
        rust_log: "info,lapin=warn,sqlx=warn".to_owned(),
        custody_xpub: secrets.custody_xpub()?,
        secrets,
        chain: Chain {
            rpc_url: format!("http://127.0.0.1:{anvil_port}"),
            chain_id: 31337,
            accounts: Vec::new(),
            contract_address: None,
        },
    };

    let (tx, rx) = mpsc::channel();
    // Ctrl-C stops the containers in order; refused when a handler is set already.
    let _ = ctrlc::set_handler(move || {
        let _ = tx.send(());
    });
    let mut supervisor = Supervisor::new(console, rx);
    let result = start_and_check(
        &mut plan,
        stand_in_port,
        out,
        &anvil,
        &mut supervisor,
        report,
        console,
    );
    console.info("stopping the containers (SIGTERM, as docker stop)");
    supervisor.shutdown(Duration::from_secs(40));
    remove_containers();
    if let Err(err) = drop_database(&servers.postgres_url) {
        console.error(&format!("{err:#}"));
    }
    result
}

fn start_and_check(
    plan: &mut Plan,
    stand_in_port: u16,
    out: &Path,
    anvil: &Path,
    supervisor: &mut Supervisor,
    report: &mut Report,
    console: Console,
) -> anyhow::Result<Result<(), String>> {
    let options = AnvilOptions {
        port: plan
            .chain
            .rpc_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("anvil port")?,
        chain_id: plan.chain.chain_id,
        block_time: 1,
        start_timeout: Duration::from_secs(60),
        logs: false,
        config_out: out.join("anvil.json"),
    };
    plan.chain.accounts = match proceed(up::start_anvil(&options, supervisor, anvil)?) {
        Ok(accounts) => accounts,
        Err(why) => return Ok(Err(why)),
    };
    console.info(&format!(
        "anvil: chain {} at {}",
        plan.chain.chain_id, plan.chain.rpc_url
    ));

    if let Err(why) = proceed(up::migrate(
        Path::new("migrate"),
        plan,
        supervisor,
        console,
        |command| in_container(&command, "migrate"),
    )?) {
        return Ok(Err(why));
    }
    plan.chain.contract_address = match proceed(up::deploy_contract(
        Some(Path::new(up::DEPLOY_BIN)),
        // Inside the container: its /tmp (a tmpfs), gone with it.
        Path::new("/tmp/deployment.json"),
        plan,
        supervisor,
        console,
        |command| in_container(&command, up::DEPLOY_BIN),
    )?) {
        Ok(address) => address,
        Err(why) => return Ok(Err(why)),
    };

    let stand_in_listen = format!("127.0.0.1:{stand_in_port}");
    let mut command = Command::new(stack::PAYOUT_STAND_IN);
    command.envs(with_setting(
        plan.payout_stand_in_env(),
        "PAYOUT_STAND_IN_LISTEN",
        &stand_in_listen,
    ));
    supervisor.spawn(
        STAND_IN,
        0,
        Some(Color::Grey),
        false,
        in_container(&command, STAND_IN),
    )?;
    let provider_url = format!("http://{stand_in_listen}");
    for service in &plan.services {
        let mut command = Command::new(service.spec.name);
        let mut env = plan.service_env(service);
        if env.iter().any(|(key, _)| *key == "PAYOUT_PROVIDER_URL") {
            env = with_setting(env, "PAYOUT_PROVIDER_URL", &provider_url);
        }
        command.envs(env);
        supervisor.spawn(
            service.spec.name,
            1,
            None,
            false,
            in_container(&command, service.spec.name),
        )?;
    }
    console.info(&format!(
        "started {} service containers from {RUNTIME_TAG}; waiting for every /health to answer 200",
        plan.services.len()
    ));
    let started = Instant::now();
    if let Err(why) = proceed(up::wait_healthy(plan, supervisor, HEALTH_TIMEOUT)?) {
        return Ok(Err(why));
    }
    console.info(&format!(
        "every /health answered 200 within {:.0}s",
        started.elapsed().as_secs_f64()
    ));

    for service in &plan.services {
        let name = service.spec.name;
        let container = format!("{CONTAINER_PREFIX}{name}");
        let user = docker_output(&["inspect", "--format", "{{.Config.User}}", &container])?;
        let id = docker_output(&["exec", &container, "id", "-u"])?;
        let uid = match non_root(&user, Some(&id)) {
            Ok(uid) => uid,
            Err(why) => return Ok(Err(format!("{name}: {why}"))),
        };
        report.services.push(ServiceResult {
            name: name.to_owned(),
            port: service.port,
            user,
            uid,
            healthy_after: None,
        });
    }

    // The image's HEALTHCHECK, as docker runs it.
    let mut first_healthy: BTreeMap<String, Duration> = BTreeMap::new();
    let names: Vec<&str> = plan.services.iter().map(|s| s.spec.name).collect();
    let outcome = wait_for(
        HEALTHY_TIMEOUT,
        || {
            let mut states = Vec::new();
            for name in &names {
                let container = format!("{CONTAINER_PREFIX}{name}");
                let status = docker_output(&[
                    "inspect",
                    "--format",
                    "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                    &container,
                ])
                .unwrap_or_default();
                let health = Health::parse(&status);
                if health == Health::Healthy {
                    first_healthy
                        .entry((*name).to_owned())
                        .or_insert_with(|| started.elapsed());
                }
                states.push(((*name).to_owned(), health));
            }
            all_healthy(&states)
        },
        || match supervisor.wait(Duration::from_secs(1)) {
            Wake::Signal => Err("stopped (Ctrl-C)".to_owned()),
            Wake::Exited { name, status } => Err(format!(
                "{name} exited ({status}); {}",
                supervisor.tail_report(&name)
            )),
            Wake::Timeout => Ok(()),
        },
    );
    for result in &mut report.services {
        result.healthy_after = first_healthy.get(&result.name).copied();
    }
    if let Err(why) = outcome {
        let mut why = format!("HEALTHCHECK: {why}");
        for name in &names {
            let container = format!("{CONTAINER_PREFIX}{name}");
            if let Ok(log) = docker_output(&[
                "inspect",
                "--format",
                "{{json .State.Health.Log}}",
                &container,
            ]) {
                let _ = write!(why, "\n{name} health log: {log}");
            }
        }
        return Ok(Err(why));
    }
    console.info("every container's HEALTHCHECK is healthy");
    Ok(Ok(()))
}

/// A step of `cargo xtask up` as this step's result.
fn proceed<T>(step: up::Step<T>) -> Result<T, String> {
    match step {
        ControlFlow::Continue(value) => Ok(value),
        ControlFlow::Break(Outcome::Stopped) => Err("stopped (Ctrl-C)".to_owned()),
        ControlFlow::Break(Outcome::Failed(why)) => Err(why),
    }
}

/// `env` with `key` set to `value` (replaced where present, else added).
fn with_setting(
    mut env: Vec<(&'static str, String)>,
    key: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    env.retain(|(k, _)| *k != key);
    env.push((key, value.to_owned()));
    env
}

/// Ports free on 127.0.0.1 right now (bound together, so all distinct).
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("finding a free port")?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Drops and makes [`DATABASE`] (psql against the admin URL); returns its URL.
fn fresh_database(admin_url: &str) -> anyhow::Result<String> {
    drop_database(admin_url)?;
    psql(admin_url, &format!("CREATE DATABASE {DATABASE}"))?;
    let mut url = reqwest::Url::parse(admin_url).context("--postgres-url")?;
    url.set_path(&format!("/{DATABASE}"));
    Ok(url.to_string())
}

fn drop_database(admin_url: &str) -> anyhow::Result<()> {
    psql(
        admin_url,
        &format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
    )
}

fn psql(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    let psql =
        find_program("psql").context("psql is missing (apt-get install postgresql-client)")?;
    let mut command = Command::new(psql);
    command.args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql]);
    // Through libpq's variables, so a password never shows in `ps`.
    for (key, value) in libpq_env(admin_url)? {
        command.env(key, value);
    }
    command_output(&mut command)
        .map(drop)
        .with_context(|| format!("psql on {}: {sql}", up::redact(admin_url)))
}

/// A `postgres://` URL as libpq's PG* variables.
fn libpq_env(url: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let parsed = reqwest::Url::parse(url).context("--postgres-url is no URL")?;
    let mut env = vec![
        (
            "PGHOST",
            parsed.host_str().unwrap_or("127.0.0.1").to_owned(),
        ),
        ("PGPORT", parsed.port().unwrap_or(5432).to_string()),
        (
            "PGDATABASE",
            percent_decode(parsed.path().trim_start_matches('/')),
        ),
    ];
    if !parsed.username().is_empty() {
        env.push(("PGUSER", percent_decode(parsed.username())));
    }
    if let Some(password) = parsed.password() {
        env.push(("PGPASSWORD", percent_decode(password)));
    }
    Ok(env)
}

/// `%XX` escapes of a URL part decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ------------------------------------------------------------- the checks --

/// What a poll saw.
#[derive(Debug, PartialEq, Eq)]
enum Probe<T> {
    Done(T),
    /// Not yet, and why.
    Pending(String),
    /// Never: stop waiting.
    Failed(String),
}

/// Probes until done, failed or `timeout` passes; `pause` waits between
/// probes and may end the wait (a container died).
fn wait_for<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> Probe<T>,
    mut pause: impl FnMut() -> Result<(), String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Probe::Done(value) => return Ok(value),
            Probe::Failed(why) => return Err(why),
            Probe::Pending(why) if Instant::now() >= deadline => {
                return Err(format!("not within {}s: {why}", timeout.as_secs()));
            }
            Probe::Pending(_) => pause()?,
        }
    }
}

/// A container's `.State.Health.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Starting,
    Healthy,
    Unhealthy,
    /// The image has no HEALTHCHECK (or the container is gone).
    None,
}

impl Health {
    fn parse(status: &str) -> Self {
        match status.trim() {
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            "starting" => Health::Starting,
            _ => Health::None,
        }
    }
}

fn all_healthy(states: &[(String, Health)]) -> Probe<()> {
    let mut starting = Vec::new();
    for (name, health) in states {
        match health {
            Health::Healthy => {}
            Health::Starting => starting.push(name.as_str()),
            Health::Unhealthy => return Probe::Failed(format!("{name} is unhealthy")),
            Health::None => {
                return Probe::Failed(format!(
                    "{name} has no HEALTHCHECK state (no check in the image?)"
                ));
            }
        }
    }
    if starting.is_empty() {
        Probe::Done(())
    } else {
        Probe::Pending(format!("still starting: {}", starting.join(", ")))
    }
}

/// The uid a container runs as, refused when root: the image's `USER`
/// (`uid[:gid]` or a name) and, when given, what `id -u` printed inside.
fn non_root(config_user: &str, id_u: Option<&str>) -> Result<u32, String> {
    let user = config_user.split(':').next().unwrap_or_default().trim();
    if user.is_empty() || user == "root" || user == "0" {
        return Err(format!("the image runs as root (USER {config_user:?})"));
    }
    let uid = match id_u {
        Some(id) => id
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("`id -u` printed {id:?}"))?,
        None => user.parse::<u32>().map_err(|_| {
            format!("USER {config_user:?} is not numeric (runAsNonRoot cannot verify a name)")
        })?,
    };
    if uid == 0 {
        return Err("the process runs as uid 0".to_owned());
    }
    Ok(uid)
}

// ------------------------------------------------------------- the report --

#[derive(Debug, Default)]
struct Report {
    docker: String,
    /// Base image tag and whether it was made by this run.
    bases: Vec<(String, bool)>,
    builds: Vec<(String, Duration)>,
    sizes: Vec<(String, u64)>,
    services: Vec<ServiceResult>,
    failure: Option<String>,
}

#[derive(Debug)]
struct ServiceResult {
    name: String,
    port: u16,
    user: String,
    uid: u32,
    healthy_after: Option<Duration>,
}

impl Report {
    fn result(&self) -> &str {
        if self.failure.is_some() {
            "FAILED"
        } else {
            "passed"
        }
    }

    fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for ((tag, size), (_, took)) in self.sizes.iter().zip(&self.builds) {
            lines.push(format!(
                "{tag}: {:.1} MB, built in {:.0}s",
                megabytes(*size),
                took.as_secs_f64()
            ));
        }
        for s in &self.services {
            lines.push(format!(
                "{}: /health 200 on :{}, uid {} (USER {}), HEALTHCHECK {}",
                s.name,
                s.port,
                s.uid,
                s.user,
                s.healthy_after
                    .map_or("not healthy".to_owned(), |d| format!(
                        "healthy after {:.0}s",
                        d.as_secs_f64()
                    ))
            ));
        }
        lines.push(format!("image check: {}", self.result()));
        lines
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Container image check\n");
        let _ = writeln!(
            md,
            "{} · docker {} · `cargo xtask test --step image` · **{}**\n",
            bench::utc_now(),
            self.docker,
            self.result()
        );
        if !self.bases.is_empty() {
            let _ = writeln!(md, "Base images (made locally, see xtask/src/image.rs):\n");
            for (tag, made) in &self.bases {
                let _ = writeln!(
                    md,
                    "- `{tag}`: {}",
                    if *made { "made by this run" } else { "present" }
                );
            }
            md.push('\n');
        }
        if !self.sizes.is_empty() {
            let _ = writeln!(md, "| image | size | build |\n|---|---:|---:|");
            for ((tag, size), (_, took)) in self.sizes.iter().zip(&self.builds) {
                let _ = writeln!(
                    md,
                    "| `{tag}` | {:.1} MB | {:.0}s |",
                    megabytes(*size),
                    took.as_secs_f64()
                );
            }
            md.push('\n');
        }
        if !self.services.is_empty() {
            let _ = writeln!(
                md,
                "| service | /health | user | HEALTHCHECK |\n|---|---|---|---|"
            );
            for s in &self.services {
                let _ = writeln!(
                    md,
                    "| {} | 200 | uid {} (`USER {}`) | {} |",
                    s.name,
                    s.uid,
                    s.user,
                    s.healthy_after
                        .map_or("not healthy".to_owned(), |d| format!(
                            "healthy after {:.0}s",
                            d.as_secs_f64()
                        ))
                );
            }
            md.push('\n');
        }
        if let Some(why) = &self.failure {
            let _ = writeln!(md, "Failure:\n\n```\n{why}\n```");
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO_DOCKERFILE: &str = include_str!("../../Dockerfile");

    #[test]
    fn the_repository_dockerfile_names_three_base_images_and_its_stages() {
        let parsed = parse_dockerfile(REPO_DOCKERFILE).expect("parses");
        assert_eq!(
            parsed.bases,
            [
                "rust:1.95-slim-bookworm",
                "node:20-bookworm-slim",
                "debian:bookworm-slim"
            ]
        );
        for stage in ["chef", "planner", "builder", RUNTIME_TARGET, ANVIL_TARGET] {
            assert!(
                parsed.stages.iter().any(|s| s == stage),
                "{stage}: {parsed:?}"
            );
        }
        let ordered = base_images_in_order(&parsed.bases).expect("known bases");
        let tags: Vec<String> = ordered.iter().map(Base::tag).collect();
        assert_eq!(
            tags,
            [
                "debian:bookworm-slim",
                "rust:1.95-slim-bookworm",
                "node:20-bookworm-slim"
            ]
        );
    }

    #[test]
    fn from_lines_take_arg_defaults_flags_continuations_and_skip_own_stages() {
        let text = "# syntax=docker/dockerfile:1\n\
            ARG BASE=debian\nARG REL=\"trixie\" UNUSED\n\
            FROM --platform=$BUILDPLATFORM ${BASE}:${REL}-slim AS one\n\
            RUN echo \\\n  FROM not-an-image\n\
            from one as two\n\
            FROM \\\n  node:22-$REL-slim\n\
            FROM scratch\n";
        let parsed = parse_dockerfile(text).expect("parses");
        assert_eq!(parsed.bases, ["debian:trixie-slim", "node:22-trixie-slim"]);
        assert_eq!(parsed.stages, ["one", "two"]);
    }

    #[test]
    fn an_undeclared_or_defaultless_arg_in_from_is_refused() {
        let err = parse_dockerfile("FROM rust:${RUST}-slim").expect_err("undeclared");
        assert!(format!("{err:#}").contains("RUST is no ARG"), "{err:#}");
        let err = parse_dockerfile("ARG RUST\nFROM rust:${RUST}-slim").expect_err("no default");
        assert!(format!("{err:#}").contains("no default"), "{err:#}");
    }

    #[test]
    fn base_names_are_recognised_and_unknown_ones_refused() {
        assert_eq!(
            Base::parse("rust:1.95-slim-bookworm").expect("rust"),
            Base::Rust {
                version: "1.95".to_owned(),
                release: "bookworm".to_owned()
            }
        );
        assert_eq!(
            Base::parse("docker.io/library/node:20-bookworm-slim").expect("node"),
            Base::Node {
                major: "20".to_owned(),
                release: "bookworm".to_owned()
            }
        );
        assert_eq!(
            Base::parse("debian:trixie-slim").expect("debian"),
            Base::Debian {
                release: "trixie".to_owned()
            }
        );
        for unknown in [
            "alpine:3.20",
            "debian:bookworm",
            "rust:latest",
            "node:20-alpine",
            "rust:1.95-slim-Bookworm",
        ] {
            let err = Base::parse(unknown).expect_err(unknown);
            assert!(err.to_string().contains("no local recipe"), "{err}");
        }
    }

    #[test]
    fn the_rootfs_is_slimmed_like_the_official_slim_image() {
        let root = std::env::temp_dir().join(format!("xtask-rootfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let files = [
            "usr/share/doc/apt/copyright",
            "usr/share/doc/apt/changelog.gz",
            "usr/share/doc/apt/examples/sources.list",
            "usr/share/doc/README",
            "usr/share/man/man1/ls.1.gz",
            "usr/share/locale/de/LC_MESSAGES/apt.mo",
            "var/cache/apt/archives/apt.deb",
            "var/cache/apt/pkgcache.bin",
            "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
            "usr/bin/apt",
        ];
        for file in files {
            let path = root.join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            fs::write(&path, b"x").expect("write");
        }
        slim_rootfs(&root).expect("slimmed");
        let left: Vec<&str> = files
            .into_iter()
            .filter(|f| root.join(f).exists())
            .collect();
        assert_eq!(left, ["usr/share/doc/apt/copyright", "usr/bin/apt"]);
        assert!(root.join("usr/share/man").is_dir(), "the directories stay");
        assert!(!root.join("usr/share/doc/apt/examples").exists());
        let clean =
            fs::read_to_string(root.join("etc/apt/apt.conf.d/docker-clean")).expect("clean");
        assert!(clean.contains("Dir::Cache::pkgcache \"\";"), "{clean}");
        let dpkg = fs::read_to_string(root.join("etc/dpkg/dpkg.cfg.d/docker")).expect("dpkg");
        assert!(dpkg.contains("path-exclude /usr/share/man/*\n"), "{dpkg}");
        fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn the_host_toolchain_must_be_the_version_the_tag_names() {
        assert!(version_matches("1.95", "1.95.0"));
        assert!(version_matches("1.95", "1.95"));
        assert!(version_matches("20", "20.20.2"));
        assert!(!version_matches("1.95", "1.950.0"));
        assert!(!version_matches("1.9", "1.95.0"));
        assert!(!version_matches("20", "22.1.0"));
    }

    #[test]
    fn the_stage_images_build_on_the_local_debian_with_the_host_versions() {
        let rust = rust_stage_dockerfile("bookworm", "1.95.0");
        assert!(rust.contains("FROM debian:bookworm-slim\n"), "{rust}");
        assert!(rust.contains("RUST_VERSION=1.95.0"), "{rust}");
        assert!(rust.contains("CARGO_HOME=/usr/local/cargo"), "{rust}");
        assert!(rust.contains("org.haven.local-base=\"made by"), "{rust}");
        let node = node_stage_dockerfile("bookworm", "20.20.2", true);
        assert!(node.contains("FROM debian:bookworm-slim\n"), "{node}");
        assert!(
            node.contains("NODE_VERSION=20.20.2 \\\n    NODE_EXTRA_CA_CERTS="),
            "{node}"
        );
        let node = node_stage_dockerfile("bookworm", "20.20.2", false);
        assert!(!node.contains("NODE_EXTRA_CA_CERTS"), "{node}");
        assert!(node.contains("ENV NODE_VERSION=20.20.2\nCMD"), "{node}");
    }

    #[test]
    fn a_container_gets_its_settings_by_name_never_on_the_command_line() {
        let mut command = Command::new("/somewhere/chain-minter");
        command
            .arg("--flag")
            .env("SIGNER_PRIVATE_KEYS", "0xsecret")
            .env("PORT", "18083")
            .env_remove("DATABASE_URL");
        let docker = in_container(&command, "chain-minter");
        let args: Vec<String> = docker
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!args.iter().any(|a| a.contains("0xsecret")), "{args:?}");
        let image_at = args.iter().position(|a| a == RUNTIME_TAG).expect("image");
        assert_eq!(args[image_at + 1..], ["chain-minter", "--flag"]);
        assert_eq!(args[..5], ["run", "--rm", "--network", "host", "--name"]);
        assert_eq!(args[5], "haven-image-check-chain-minter");
        for flag in HARDENING {
            assert!(args.contains(&flag.to_owned()), "{flag}: {args:?}");
        }
        let named: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "-e")
            .map(|w| w[1].as_str())
            .collect();
        assert_eq!(named, ["PORT", "SIGNER_PRIVATE_KEYS"]);
        let env: BTreeMap<String, Option<String>> = docker
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(env["SIGNER_PRIVATE_KEYS"].as_deref(), Some("0xsecret"));
        assert_eq!(env["DOCKER_BUILDKIT"].as_deref(), Some("0"));
        assert!(!env.contains_key("DATABASE_URL"));
    }

    #[test]
    fn a_setting_is_replaced_not_doubled() {
        let env = vec![
            ("PAYOUT_PROVIDER_URL", "http://127.0.0.1:8090".to_owned()),
            ("PORT", "1".to_owned()),
        ];
        let env = with_setting(env, "PAYOUT_PROVIDER_URL", "http://127.0.0.1:40000");
        assert_eq!(
            env,
            [
                ("PORT", "1".to_owned()),
                ("PAYOUT_PROVIDER_URL", "http://127.0.0.1:40000".to_owned())
            ]
        );
    }

    #[test]
    fn healthy_only_when_every_container_is_and_unhealthy_stops_the_wait() {
        let state = |list: &[(&str, Health)]| -> Vec<(String, Health)> {
            list.iter().map(|(n, h)| ((*n).to_owned(), *h)).collect()
        };
        assert_eq!(
            all_healthy(&state(&[("a", Health::Healthy), ("b", Health::Healthy)])),
            Probe::Done(())
        );
        assert_eq!(
            all_healthy(&state(&[("a", Health::Healthy), ("b", Health::Starting)])),
            Probe::Pending("still starting: b".to_owned())
        );
        assert_eq!(
            all_healthy(&state(&[("a", Health::Starting), ("b", Health::Unhealthy)])),
            Probe::Failed("b is unhealthy".to_owned())
        );
        assert!(matches!(
            all_healthy(&state(&[("a", Health::None)])),
            Probe::Failed(why) if why.contains("no HEALTHCHECK")
        ));
        assert_eq!(Health::parse("healthy\n"), Health::Healthy);
        assert_eq!(Health::parse("starting"), Health::Starting);
        assert_eq!(Health::parse("unhealthy"), Health::Unhealthy);
        assert_eq!(Health::parse(""), Health::None);
    }

    #[test]
    fn the_wait_polls_until_done_and_stops_on_failure_timeout_or_a_dead_container() {
        let mut polls = 0;
        let mut pauses = 0;
        let done = wait_for(
            Duration::from_secs(60),
            || {
                polls += 1;
                if polls < 3 {
                    Probe::Pending("not yet".to_owned())
                } else {
                    Probe::Done(polls)
                }
            },
            || {
                pauses += 1;
                Ok(())
            },
        );
        assert_eq!(done, Ok(3));
        assert_eq!(pauses, 2);

        let timed_out: Result<(), String> = wait_for(
            Duration::ZERO,
            || Probe::Pending("b starting".to_owned()),
            || Ok(()),
        );
        assert_eq!(timed_out, Err("not within 0s: b starting".to_owned()));

        let failed: Result<(), String> = wait_for(
            Duration::from_secs(60),
            || Probe::Failed("a is unhealthy".to_owned()),
            || panic!("no pause after a failure"),
        );
        assert_eq!(failed, Err("a is unhealthy".to_owned()));

        let died: Result<(), String> = wait_for(
            Duration::from_secs(60),
            || Probe::Pending("starting".to_owned()),
            || Err("read-api exited".to_owned()),
        );
        assert_eq!(died, Err("read-api exited".to_owned()));
    }

    #[test]
    fn the_admin_url_reaches_psql_as_libpq_variables() {
        let env =
            libpq_env("postgres://ad%40min:p%2Fss%3Aw@db.internal:6543/postgres").expect("url");
        assert_eq!(
            env,
            [
                ("PGHOST", "db.internal".to_owned()),
                ("PGPORT", "6543".to_owned()),
                ("PGDATABASE", "postgres".to_owned()),
                ("PGUSER", "ad@min".to_owned()),
                ("PGPASSWORD", "p/ss:w".to_owned()),
            ]
        );
        let env = libpq_env("postgres://postgres@127.0.0.1/postgres").expect("url");
        assert_eq!(env[1], ("PGPORT", "5432".to_owned()));
        assert!(!env.iter().any(|(k, _)| *k == "PGPASSWORD"));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn root_is_refused_by_user_line_or_by_id() {
        assert_eq!(non_root("10001:10001", Some("10001\n")), Ok(10001));
        assert_eq!(non_root("1000:1000", None), Ok(1000));
        assert!(non_root("", Some("0")).is_err());
        assert!(non_root("root", None).is_err());
        assert!(non_root("0:0", None).is_err());
        assert_eq!(
            non_root("haven", Some("0")),
            Err("the process runs as uid 0".to_owned())
        );
        assert!(
            non_root("haven", None)
                .expect_err("a name")
                .contains("not numeric")
        );
    }

    #[test]
    fn the_report_has_sizes_results_and_the_failure() {
        let mut report = Report {
            docker: "20.10.24".to_owned(),
            bases: vec![("debian:bookworm-slim".to_owned(), true)],
            builds: vec![(RUNTIME_TAG.to_owned(), Duration::from_secs(1500))],
            sizes: vec![(RUNTIME_TAG.to_owned(), 123_400_000)],
            services: vec![ServiceResult {
                name: "read-api".to_owned(),
                port: 41000,
                user: "10001:10001".to_owned(),
                uid: 10001,
                healthy_after: Some(Duration::from_secs(12)),
            }],
            failure: None,
        };
        let md = report.markdown();
        assert!(md.contains("**passed**"), "{md}");
        assert!(md.contains("| `haven:local` | 123.4 MB | 1500s |"), "{md}");
        assert!(
            md.contains("| read-api | 200 | uid 10001 (`USER 10001:10001`) | healthy after 12s |"),
            "{md}"
        );
        assert!(
            md.contains("`debian:bookworm-slim`: made by this run"),
            "{md}"
        );
        report.failure = Some("read-api is unhealthy".to_owned());
        let md = report.markdown();
        assert!(
            md.contains("**FAILED**") && md.contains("read-api is unhealthy"),
            "{md}"
        );
        assert_eq!(
            report.summary().last().map(String::as_str),
            Some("image check: FAILED")
        );
    }
}
