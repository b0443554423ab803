// tests/k8s/validate.mjs: checks Kubernetes manifests offline.
//
//   node tests/k8s/validate.mjs [--each] FILE...   (tests/k8s/validate runs it)
//
// Every YAML document must be an object of a known apiVersion and kind that
// passes the Kubernetes OpenAPI schema (the kubernetes-models package) with
// no field the schema does not know (kubectl's strict field validation);
// then what the schemas cannot see, for every container that runs echokit:
//   - each long option (--foo) appears in `echokit SUB --help` (the binary
//     named by $ECHOKIT, default build/echokit; skipped, saying so, when it
//     is missing), for the container's args and for exec probes;
//   - serve: its --listen ports are declared as container ports, it has a
//     readiness and a liveness probe, each on the echo port (an exec of
//     `echokit ping` to it, or tcpSocket), the grace period is longer than
//     --drain-timeout, it has an --idle-timeout (idle clients would hold
//     --max-conns' slots for ever), and the memory limit holds the bound,
//     max-conns x (max-queue + 128 KiB + socket buffers) + 8 MiB, where a
//     connection's socket buffers are the maxima of net.ipv4.tcp_rmem and
//     tcp_wmem (the pod's sysctls, or Linux's defaults: 6 MiB + 4 MiB),
//     which cgroup v2 charges to the pod;
//   - serve --metrics on an address other pods reach: a NetworkPolicy of
//     these files selects the pods, admits the metrics port only from the
//     sources it names (no rule opens it to every source), and admits the
//     echo ports (not for hostNetwork pods, which no NetworkPolicy
//     covers: there --metrics must be on loopback);
//   - bench in a Job: Indexed, completions = parallelism = the N of
//     `--share $(JOB_COMPLETION_INDEX)/N`, backoffLimit 0, restartPolicy
//     Never, --json;
//   - the security context (non-root, no privilege escalation, read-only
//     root, no capabilities, RuntimeDefault seccomp), $(VAR)s that exist;
//   - Services and PodDisruptionBudgets select a pod template of these
//     files, and each targetPort is one of its ports, protocol included.
// The files are checked as one set (a Service may select another file's
// pods), or each on its own with --each. Prints one line per file, "ok" or
// "FAIL", then that file's errors indented; exits 0 if there are none, 1 if
// there are, 2 on bad usage, 3 if the checker itself failed.

import { execFileSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const echokit = process.env.ECHOKIT || path.join(root, "build", "echokit");

// --- schema validation --------------------------------------------------

// apiVersion "apps/v1" is the module kubernetes-models/apps/v1, "v1" is
// kubernetes-models/v1; the kind is the class it exports.
async function modelClass(apiVersion, kind) {
    if (typeof apiVersion !== "string" || !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion))
        return { error: `apiVersion ${JSON.stringify(apiVersion)} is not GROUP/VERSION or VERSION` };
    let mod;
    try {
        mod = await import(`kubernetes-models/${apiVersion}`);
    } catch {
        return { error: `unknown apiVersion ${apiVersion}` };
    }
    const cls = typeof kind === "string" ? mod[kind] : undefined;
    if (typeof cls !== "function" || cls.kind !== kind)
        return { error: `unknown kind ${JSON.stringify(kind)} in ${apiVersion}` };
    return { cls };
}

const pointer = (parts) =>
    parts.map((p) => "/" + String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("");

// The compiled schema reads each property it knows by name, and enumerates
// the keys of maps (labels, limits): seen records both, per object path, so
// that a key of the manifest the validator never looked at is one the
// schema does not have.
function tracked(value, parts, seen) {
    if (value === null || typeof value !== "object") return value;
    const at = pointer(parts);
    if (!seen.has(at)) seen.set(at, new Set());
    const keys = seen.get(at);
    return new Proxy(value, {
        get(target, key, receiver) {
            if (typeof key === "string") keys.add(key);
            const v = Reflect.get(target, key, receiver);
            return typeof key === "string" && Object.hasOwn(target, key)
                ? tracked(v, parts.concat(key), seen)
                : v;
        },
        has(target, key) {
            if (typeof key === "string") keys.add(key);
            return Reflect.has(target, key);
        },
        ownKeys(target) {
            keys.add("*");
            return Reflect.ownKeys(target);
        },
    });
}

function unknownFields(value, parts, seen, out) {
    if (Array.isArray(value)) {
        value.forEach((v, i) => unknownFields(v, parts.concat(i), seen, out));
    } else if (value !== null && typeof value === "object") {
        const keys = seen.get(pointer(parts));
        for (const [k, v] of Object.entries(value)) {
            if (keys && !keys.has("*") && !keys.has(k))
                out.push(`${pointer(parts.concat(k))}: unknown field "${k}"`);
            else unknownFields(v, parts.concat(k), seen, out);
        }
    }
}

function schemaErrors(cls, obj) {
    const errors = [];
    const seen = new Map();
    const model = new cls(obj);
    try {
        cls.prototype.validate.call(tracked(model, [], seen));
    } catch (e) {
        if (!Array.isArray(e.errors)) throw e;
        for (const err of e.errors) {
            const what = err.params && err.params.missingProperty
                ? `missing required field "${err.params.missingProperty}"`
                : err.message;
            errors.push(`${err.instancePath || "/"}: ${what}`);
        }
    }
    unknownFields(obj, [], seen, errors);
    return errors;
}

// --- echokit's options ---------------------------------------------------

const helps = new Map();
let binarySkip = null;

function echokitUsable() {
    if (binarySkip !== null) return !binarySkip;
    try {
        accessSync(echokit, constants.X_OK);
        binarySkip = false;
    } catch {
        binarySkip = true;
        console.log(`skip: option check: no echokit at ${echokit} (build it, or set ECHOKIT)`);
    }
    return !binarySkip;
}

// The --help text of `echokit SUB...`, or an Error if there is no such
// subcommand.
function helpOf(sub) {
    const key = sub.join(" ");
    if (!helps.has(key)) {
        try {
            helps.set(key, execFileSync(echokit, [...sub, "--help"], {
                encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10000,
            }));
        } catch (e) {
            helps.set(key, new Error(`\`echokit ${key} --help\` failed (${e.status ?? e.code}): ` +
                String(e.stderr || "").trim().split("\n")[0]));
        }
    }
    return helps.get(key);
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// argv is echokit's own arguments: the subcommand, then its options.
function checkOptions(argv, where, errors) {
    if (argv.length === 0 || !echokitUsable()) return;
    const sub = argv[0] === "bench" && argv[1] === "merge" ? ["bench", "merge"] : [argv[0]];
    const help = helpOf(sub);
    if (help instanceof Error) {
        errors.push(`${where}: ${help.message}`);
        return;
    }
    for (const arg of argv.slice(sub.length)) {
        if (arg === "--") break;
        if (!arg.startsWith("--") || arg.length < 3) continue;
        const name = arg.split("=")[0];
        if (!new RegExp(`(^|[\\s,\\[])${escapeRe(name)}(?=[\\s=,\\]]|$)`, "m").test(help))
            errors.push(`${where}: echokit ${sub.join(" ")} has no option ${name}`);
    }
}

// The value of an option given as "--long V", "--long=V" or "-s V".
function optionValues(argv, long, short) {
    const values = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--") break;
        if (a === long || (short && a === short)) {
            if (i + 1 < argv.length) values.push(argv[++i]);
        } else if (a.startsWith(long + "=")) {
            values.push(a.slice(long.length + 1));
        }
    }
    return values;
}
const hasFlag = (argv, long, short) => argv.some((a) => a === long || (short && a === short));

// echokit's sizes (64K, 1M) and Kubernetes' quantities (256Mi, 1G), in bytes.
function echokitBytes(s) {
    const m = /^([0-9]+)([KMG]?)$/i.exec(s);
    if (!m) return NaN;
    return Number(m[1]) * 1024 ** " KMG".indexOf((m[2] || " ").toUpperCase());
}
function quantityBytes(q) {
    const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
    if (!m) return NaN;
    const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
    return Number(m[1]) * (m[2] ? unit[m[2]] : 1);
}

// serve's listeners: {proto, port} for each --listen ADDR (or the default).
function listeners(argv) {
    const all = hasFlag(argv, "--udp", "-u") ? "UDP" : "TCP";
    const addrs = optionValues(argv, "--listen", "-l");
    if (addrs.length === 0) addrs.push("localhost:50000");
    const out = [];
    for (const a of addrs) {
        if (a.startsWith("unix:")) continue;
        const m = /^(udp:|tls:)?.*:([0-9]+)$/.exec(a);
        if (!m) continue;
        out.push({ proto: m[1] === "udp:" ? "UDP" : all, port: Number(m[2]) });
    }
    return out;
}

// --- the checks on a pod template ------------------------------------------

function podSpecOf(obj) {
    const s = obj.spec || {};
    switch (obj.kind) {
    case "Pod": return s;
    case "CronJob": return s.jobTemplate?.spec?.template?.spec;
    case "Deployment": case "DaemonSet": case "StatefulSet": case "ReplicaSet": case "Job":
        return s.template?.spec;
    default: return undefined;
    }
}
function podLabelsOf(obj) {
    if (obj.kind === "Pod") return obj.metadata?.labels || {};
    if (obj.kind === "CronJob") return obj.spec?.jobTemplate?.spec?.template?.metadata?.labels || {};
    return obj.spec?.template?.metadata?.labels || {};
}

const isEchokit = (c) => typeof c.image === "string" && /(^|\/)echokit(:|@|$)/.test(c.image);
const isEchokitPath = (p) => typeof p === "string" && /(^|\/)echokit$/.test(p);

// echokit's own arguments, as the image's ENTRYPOINT receives them.
function echokitArgv(c) {
    if (Array.isArray(c.command) && c.command.length > 0) {
        if (!isEchokitPath(c.command[0])) return null;
        return [...c.command.slice(1), ...(c.args || [])].map(String);
    }
    return Array.isArray(c.args) ? c.args.map(String) : null;
}

function probePort(probe, c) {
    const resolve = (p, proto) => {
        if (typeof p === "number") return { proto, port: p };
        const named = (c.ports || []).find((cp) => cp.name === p);
        return named ? { proto: named.protocol || "TCP", port: named.containerPort } : null;
    };
    if (probe.tcpSocket) return resolve(probe.tcpSocket.port, "TCP");
    if (probe.exec) {
        const cmd = (probe.exec.command || []).map(String);
        if (!isEchokitPath(cmd[0]) || cmd[1] !== "ping") return null;
        const target = cmd.slice(2).filter((a) => /:[0-9]+$/.test(a) && !a.startsWith("-")).pop();
        if (!target) return null;
        const udp = target.startsWith("udp:") || hasFlag(cmd, "--udp", "-u");
        return { proto: udp ? "UDP" : "TCP", port: Number(/:([0-9]+)$/.exec(target)[1]) };
    }
    return null;
}

function checkSecurity(spec, c, where, errors) {
    const eff = { ...(spec.securityContext || {}), ...(c.securityContext || {}) };
    if (eff.runAsNonRoot !== true) errors.push(`${where}: runAsNonRoot is not true`);
    if (eff.runAsUser === 0) errors.push(`${where}: runAsUser is 0 (root)`);
    if (eff.allowPrivilegeEscalation !== false)
        errors.push(`${where}: allowPrivilegeEscalation is not false`);
    if (eff.readOnlyRootFilesystem !== true)
        errors.push(`${where}: readOnlyRootFilesystem is not true`);
    if (!(eff.capabilities?.drop || []).includes("ALL"))
        errors.push(`${where}: capabilities do not drop ALL`);
    if ((eff.capabilities?.add || []).length > 0)
        errors.push(`${where}: capabilities added: ${eff.capabilities.add.join(", ")}`);
    const seccomp = eff.seccompProfile?.type;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost")
        errors.push(`${where}: seccompProfile is not RuntimeDefault`);
}

// Kubernetes expands $(VAR) in command and args from the container's env;
// an Indexed Job's pods also get JOB_COMPLETION_INDEX. A name it does not
// know stays as written, and echokit would get "$(NAME)" literally.
function checkVars(obj, c, argv, where, errors) {
    const known = new Set((c.env || []).map((e) => e.name));
    if (obj.kind === "Job" && obj.spec?.completionMode === "Indexed") known.add("JOB_COMPLETION_INDEX");
    for (const a of argv) {
        for (const m of a.matchAll(/(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g))
            if (!known.has(m[1])) errors.push(`${where}: $(${m[1]}) in "${a}" is not an env var of the container`);
    }
}

function checkServe(obj, spec, c, argv, where, errors) {
    const listen = listeners(argv);
    const declared = (c.ports || []).map((p) => ({ proto: p.protocol || "TCP", port: p.containerPort }));
    for (const l of listen)
        if (!declared.some((d) => d.proto === l.proto && d.port === l.port))
            errors.push(`${where}: serve listens on ${l.proto} ${l.port}, not among the container's ports`);
    const echo = listen.filter((l) => l.proto === "TCP");
    for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const probe = c[kind];
        if (!probe) {
            if (kind !== "startupProbe") errors.push(`${where}: no ${kind}`);
            continue;
        }
        const p = probePort(probe, c);
        if (!p || p.proto !== "TCP" || !echo.some((l) => l.port === p.port))
            errors.push(`${where}: ${kind} does not reach the echo port ` +
                `(${echo.map((l) => "TCP " + l.port).join(", ") || "none"}): it must be ` +
                "an exec of echokit ping to it, or a tcpSocket on it");
        else if (probe.exec) checkOptions(probe.exec.command.slice(1).map(String), `${where} ${kind}`, errors);
    }
    const drain = Number(optionValues(argv, "--drain-timeout", "-d").pop() ?? 10);
    const grace = spec.terminationGracePeriodSeconds ?? 30;
    if (!(grace > drain))
        errors.push(`${where}: terminationGracePeriodSeconds ${grace} is not longer than ` +
            `--drain-timeout ${drain} (SIGTERM drains; SIGKILL would cut it short)`);
    const idle = optionValues(argv, "--idle-timeout").pop();
    if (idle === undefined || !(Number(idle) > 0))
        errors.push(`${where}: no --idle-timeout: clients that connect and go quiet would hold ` +
            "--max-conns' slots for ever (and the probes would find the pod full)");
    const model = optionValues(argv, "--io", "-i").pop() ?? "auto";
    const conns = Number(optionValues(argv, "--max-conns", "-c").pop() ??
        (model === "thread" || model === "process" ? 1000 : 10000));
    const queue = echokitBytes(optionValues(argv, "--max-queue", "-Q").pop() ?? "256K");
    const limit = c.resources?.limits?.memory;
    const kernel = socketBuffers(spec, where, errors);
    const bound = conns * (queue + 128 * 1024 + kernel.bytes) + 8 * 2 ** 20;
    const sum = `max-conns x (max-queue + 128 KiB + socket buffers ${kernel.bytes / 1024} KiB) + 8 MiB = ` +
        `${Math.ceil(bound / 2 ** 20)} MiB (socket buffers: ${kernel.from})`;
    if (limit === undefined)
        errors.push(`${where}: no memory limit (the bound is ${sum})`);
    else if (!(quantityBytes(limit) >= bound))
        errors.push(`${where}: memory limit ${limit} is under the bound, ${sum}`);
}

// What the kernel may hold for one connection, which cgroup v2 charges to
// the pod: its receive and send buffers, which autotuning grows up to the
// maxima of net.ipv4.tcp_rmem and tcp_wmem (a client that writes and never
// reads fills both). The pod's sysctls set them (Kubernetes 1.32 and later
// allow these two); otherwise they are the node's: Linux's defaults are
// assumed. A hostNetwork pod shares the node's and may set none.
const LINUX_TCP_RMEM_MAX = 6291456, LINUX_TCP_WMEM_MAX = 4194304;
function socketBuffers(spec, where, errors) {
    const sysctls = spec.securityContext?.sysctls || [];
    const max = (name, linux) => {
        const s = sysctls.find((x) => x.name === name);
        if (!s) return linux;
        const v = String(s.value).trim().split(/\s+/).map(Number);
        if (v.length !== 3 || !v.every((n) => Number.isInteger(n) && n > 0)) {
            errors.push(`${where}: sysctl ${name} "${s.value}" is not three sizes (min, default, max)`);
            return linux;
        }
        return v[2];
    };
    const rmem = max("net.ipv4.tcp_rmem", LINUX_TCP_RMEM_MAX);
    const wmem = max("net.ipv4.tcp_wmem", LINUX_TCP_WMEM_MAX);
    const set = sysctls.some((x) => x.name === "net.ipv4.tcp_rmem" || x.name === "net.ipv4.tcp_wmem");
    if (set && spec.hostNetwork)
        errors.push(`${where}: net.* sysctls on a hostNetwork pod: the kubelet refuses them (they would be the node's)`);
    return {
        bytes: rmem + wmem,
        from: set ? "the pod's tcp_rmem and tcp_wmem maxima" :
            "the node's tcp_rmem and tcp_wmem maxima, Linux's defaults 6 MiB + 4 MiB",
    };
}

function checkBenchJob(obj, spec, argv, where, errors) {
    const s = obj.spec || {};
    if (s.completionMode !== "Indexed") errors.push(`${where}: the bench Job is not completionMode: Indexed`);
    if (s.completions === undefined || s.completions !== s.parallelism)
        errors.push(`${where}: completions (${s.completions}) and parallelism (${s.parallelism}) differ: ` +
            "the shares would not run at once");
    if (s.backoffLimit !== 0)
        errors.push(`${where}: backoffLimit is ${s.backoffLimit ?? "6 (the default)"}, not 0: a failed bench would be retried`);
    if (spec.restartPolicy !== "Never") errors.push(`${where}: restartPolicy is not Never`);
    if (!hasFlag(argv, "--json")) errors.push(`${where}: bench without --json: nothing for bench merge`);
    const shares = optionValues(argv, "--share");
    if (shares.length !== 1) {
        errors.push(`${where}: bench needs one --share $(JOB_COMPLETION_INDEX)/N`);
        return;
    }
    const m = /^\$\(JOB_COMPLETION_INDEX\)\/([0-9]+)$/.exec(shares[0]);
    if (!m) errors.push(`${where}: --share ${shares[0]} is not $(JOB_COMPLETION_INDEX)/N`);
    else if (Number(m[1]) !== s.completions)
        errors.push(`${where}: --share .../${m[1]} but completions is ${s.completions}`);
}

function checkWorkload(obj, where, errors) {
    const spec = podSpecOf(obj);
    if (!spec) return;
    if (obj.spec?.selector?.matchLabels && obj.kind !== "Job") {
        const labels = podLabelsOf(obj);
        for (const [k, v] of Object.entries(obj.spec.selector.matchLabels))
            if (labels[k] !== v) errors.push(`${where}: selector ${k}=${v} does not match the pod template's labels`);
    }
    for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
        if (!isEchokit(c)) continue;
        const at = `${where} container ${c.name}`;
        checkSecurity(spec, c, at, errors);
        const argv = echokitArgv(c);
        if (argv === null) continue;
        checkVars(obj, c, argv, at, errors);
        checkOptions(argv, at, errors);
        for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"])
            if (c[kind]?.exec && isEchokitPath(c[kind].exec.command?.[0]))
                checkVars(obj, c, c[kind].exec.command.map(String), `${at} ${kind}`, errors);
        if (argv[0] === "serve") checkServe(obj, spec, c, argv, at, errors);
        if (argv[0] === "bench" && argv[1] !== "merge" && obj.kind === "Job")
            checkBenchJob(obj, spec, argv, at, errors);
    }
}

// --- NetworkPolicies and the metrics port --------------------------------

// The ports serve's --metrics listens on where other pods reach it (not
// loopback, not a unix socket).
function exposedMetrics(argv) {
    const ports = [];
    for (const a of optionValues(argv, "--metrics")) {
        if (a.startsWith("unix:")) continue;
        const m = /^(.*):([0-9]+)$/.exec(a);
        if (!m) continue;
        const host = m[1].replace(/^\[|\]$/g, "");
        if (/^127\./.test(host) || host === "::1" || host === "localhost") continue;
        ports.push(Number(m[2]));
    }
    return ports;
}

// Whether a label selector (matchLabels and matchExpressions) selects labels.
function selectorMatches(sel, labels) {
    if (!sel) return false;
    const okLabels = Object.entries(sel.matchLabels || {}).every(([k, v]) => labels[k] === v);
    const okExprs = (sel.matchExpressions || []).every((e) => {
        const has = Object.hasOwn(labels, e.key);
        switch (e.operator) {
        case "In": return has && (e.values || []).includes(labels[e.key]);
        case "NotIn": return !has || !(e.values || []).includes(labels[e.key]);
        case "Exists": return has;
        case "DoesNotExist": return !has;
        default: return false;
        }
    });
    return okLabels && okExprs;
}

const emptySelector = (sel) => sel !== undefined && sel !== null &&
    Object.keys(sel.matchLabels || {}).length === 0 && (sel.matchExpressions || []).length === 0;

// Whether a rule's ports admit port/proto of a container whose ports are
// cports (a rule port may name one of them); no ports: every port.
function rulePortsAdmit(rule, port, proto, cports) {
    if (!rule.ports || rule.ports.length === 0) return true;
    return rule.ports.some((p) => {
        if ((p.protocol || "TCP") !== proto) return false;
        if (p.port === undefined) return true;
        if (typeof p.port === "string")
            return cports.some((cp) => cp.name === p.port && cp.containerPort === port &&
                (cp.protocol || "TCP") === proto);
        return p.endPort !== undefined ? port >= p.port && port <= p.endPort : p.port === port;
    });
}

// Whether a rule's sources are every source: no from, an empty list, a
// peer that is every namespace, or an ipBlock of everything.
function ruleFromAll(rule) {
    if (!rule.from || rule.from.length === 0) return true;
    return rule.from.some((peer) =>
        (emptySelector(peer.namespaceSelector) && (peer.podSelector === undefined || emptySelector(peer.podSelector))) ||
        (peer.ipBlock && /\/0$/.test(peer.ipBlock.cidr || "") && (peer.ipBlock.except || []).length === 0));
}

// For every pod template of the set whose serve exposes --metrics: the
// NetworkPolicies that select it must keep the metrics port to the
// sources they name, and admit the echo ports.
function checkNetworkPolicies(objs) {
    const policies = objs.filter(({ obj }) => obj.kind === "NetworkPolicy" &&
        (obj.spec?.policyTypes ? obj.spec.policyTypes.includes("Ingress") : true));
    for (const { obj, where, errors } of objs) {
        const spec = podSpecOf(obj);
        if (!spec) continue;
        const labels = podLabelsOf(obj);
        for (const c of spec.containers || []) {
            const argv = isEchokit(c) ? echokitArgv(c) : null;
            if (argv === null || argv[0] !== "serve") continue;
            const metrics = exposedMetrics(argv);
            if (metrics.length === 0) continue;
            const at = `${where} container ${c.name}`;
            const cports = c.ports || [];
            if (spec.hostNetwork) {
                errors.push(`${at}: --metrics on port ${metrics.join(", ")} of a hostNetwork pod, which no ` +
                    "NetworkPolicy covers: every host that reaches the node reads it; bind it to 127.0.0.1");
                continue;
            }
            const mine = policies.filter((p) => selectorMatches(p.obj.spec?.podSelector, labels));
            if (mine.length === 0) {
                errors.push(`${at}: --metrics on port ${metrics.join(", ")} is open to every pod of the cluster: ` +
                    "no NetworkPolicy of these files selects these pods");
                continue;
            }
            for (const p of mine)
                (p.obj.spec.ingress || []).forEach((rule, i) => {
                    for (const port of metrics)
                        if (rulePortsAdmit(rule, port, "TCP", cports) && ruleFromAll(rule))
                            p.errors.push(`${p.where}: ingress rule ${i + 1} opens the metrics port ${port} ` +
                                `(--metrics of ${where}) to every source: give it a from`);
                });
            for (const l of listeners(argv)) {
                const admitted = mine.some((p) => (p.obj.spec.ingress || []).some((rule) =>
                    rulePortsAdmit(rule, l.port, l.proto, cports)));
                if (!admitted)
                    errors.push(`${at}: the NetworkPolicies that select these pods admit nothing on the echo ` +
                        `port ${l.proto} ${l.port}`);
            }
        }
    }
}

// Services and PDBs must select a pod template of the files checked together.
function checkSelectors(objs) {
    const pods = objs.filter((o) => podSpecOf(o.obj));
    const matches = (selector, o) =>
        Object.entries(selector).every(([k, v]) => podLabelsOf(o.obj)[k] === v);
    for (const { obj, where, errors } of objs) {
        let selector;
        if (obj.kind === "Service") selector = obj.spec?.selector;
        else if (obj.kind === "PodDisruptionBudget") selector = obj.spec?.selector?.matchLabels;
        else continue;
        if (!selector || Object.keys(selector).length === 0) continue;
        const chosen = pods.filter((p) => matches(selector, p));
        if (chosen.length === 0) {
            errors.push(`${where}: its selector matches no pod template in these files`);
            continue;
        }
        if (obj.kind !== "Service") continue;
        for (const port of obj.spec?.ports || []) {
            const proto = port.protocol || "TCP";
            const target = port.targetPort ?? port.port;
            for (const p of chosen) {
                const cports = (podSpecOf(p.obj).containers || []).flatMap((c) => c.ports || []);
                const ok = cports.some((cp) => (cp.protocol || "TCP") === proto &&
                    (typeof target === "number" ? cp.containerPort === target : cp.name === target));
                if (!ok) errors.push(`${where}: port ${port.name ?? port.port}: targetPort ` +
                    `${target}/${proto} is no port of ${p.where}`);
            }
        }
    }
}

// --- main -------------------------------------------------------------------

// Checks files as one set (Services may select pods of another file);
// returns [{file, errors, count}].
async function validateSet(files) {
    const objs = [];
    const perFile = [];
    for (const file of files) {
        const entry = { file, errors: [], count: 0 };
        perFile.push(entry);
        let text;
        try {
            text = readFileSync(file, "utf8");
        } catch (e) {
            entry.errors.push(`cannot read: ${e.message}`);
            continue;
        }
        const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
        if (!Array.isArray(docs)) {
            entry.errors.push("not YAML documents");
            continue;
        }
        for (const [i, doc] of docs.entries()) {
            const where = `document ${i + 1}`;
            if (doc.errors.length > 0) {
                for (const e of doc.errors) entry.errors.push(`${where}: YAML: ${e.message.split("\n")[0]}`);
                continue;
            }
            const obj = doc.toJS();
            if (obj === null || obj === undefined) continue;
            entry.count++;
            if (typeof obj !== "object" || Array.isArray(obj)) {
                entry.errors.push(`${where}: not a Kubernetes object`);
                continue;
            }
            const name = `${where} (${obj.kind}/${obj.metadata?.name ?? "?"})`;
            const { cls, error } = await modelClass(obj.apiVersion, obj.kind);
            if (error) {
                entry.errors.push(`${name}: ${error}`);
                continue;
            }
            for (const e of schemaErrors(cls, obj)) entry.errors.push(`${name}: schema: ${e}`);
            checkWorkload(obj, name, entry.errors);
            objs.push({ obj, where: `${path.basename(file)} ${name}`, errors: entry.errors });
        }
    }
    checkSelectors(objs);
    checkNetworkPolicies(objs);
    return perFile;
}

// --each: every file is a set of its own (the broken examples in bad/).
async function main(argv) {
    const each = argv[0] === "--each";
    const files = each ? argv.slice(1) : argv;
    if (files.length === 0) {
        console.error("usage: node tests/k8s/validate.mjs [--each] FILE...");
        return 2;
    }
    const results = [];
    for (const set of each ? files.map((f) => [f]) : [files])
        results.push(...await validateSet(set));
    let failed = 0;
    for (const { file, errors, count } of results) {
        const rel = path.relative(process.cwd(), path.resolve(file)) || file;
        if (errors.length === 0) {
            console.log(`ok   ${rel} (${count} object${count === 1 ? "" : "s"})`);
        } else {
            failed++;
            console.log(`FAIL ${rel}`);
            for (const e of errors) console.log(`     ${e}`);
        }
    }
    return failed === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
    (status) => { process.exitCode = status; },
    (e) => { console.error(`validate.mjs: ${e.stack || e}`); process.exitCode = 3; },
);
