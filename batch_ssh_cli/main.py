"""The `batch-ssh` commands: argument parsing, one function per command, and the exit codes."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from batch_ssh_cli import __version__, sshfiles
from batch_ssh_cli.api import AppClient, public_answer
from batch_ssh_cli.config import (
    USER_NAME,
    Settings,
    config_path,
    load_settings,
    read_config_file,
    write_config_file,
)
from batch_ssh_cli.errors import EXIT_CODES, FAILED, NOT_FOUND, OK, UNREACHABLE, USAGE, CliError
from batch_ssh_cli.render import CONNECTION_HEADERS, ProgressDisplay, connection_rows, progress_text, table

TERMINAL_PHASES = ("completed", "partial", "failed", "rejected")
POLL_INTERVAL = 1.0

EPILOG = (
    "exit codes:\n"
    + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
    + """
  once `batch-ssh ssh` has started ssh, it exits with ssh's own code (255: ssh could not log in)

configuration (environment first, then the config file):
  BATCH_SSH_URL   the app's base URL, e.g. https://my-app.azurewebsites.net
  BATCH_SSH_KEY   the function key (never a flag: it would land in shell history)
  BATCH_SSH_USER  your user name on the nodes (default: your login name)
  config file     ~/.config/batch-ssh/config (mode 0600; BATCH_SSH_CONFIG to use another), written by
                  `batch-ssh configure`"""
)


# ---- helpers ----------------------------------------------------------------------------------------------


def out(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print `data` as JSON with --json, else `text`."""
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    elif text:
        print(text)


def note(message: str) -> None:
    """A remark for the person (stderr, so stdout stays the result)."""
    print(message, file=sys.stderr)


def user_of(args: argparse.Namespace, settings) -> str:
    user = getattr(args, "user", None) or settings.user
    if not user:
        raise CliError(
            "no user name: pass --user, set BATCH_SSH_USER or add `user = NAME` to the config", USAGE
        )
    if not USER_NAME.match(user):
        raise CliError(f"{user!r} is not a Linux user name (lower-case letters, digits, _ or -)", USAGE)
    return user


def read_json_file(path: str) -> dict:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).expanduser().read_text()
        body = json.loads(text)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}", USAGE) from None
    except ValueError as error:
        raise CliError(f"{path} is not JSON: {error}", USAGE) from None
    if not isinstance(body, dict):
        raise CliError(f"{path} must hold a JSON object", USAGE)
    return body


def user_entry(args: argparse.Namespace, user: str) -> dict:
    """One user of a request or grant: name, your public key, and the expiry/admin flags if given."""
    entry: dict[str, Any] = {"name": user, "sshPublicKey": sshfiles.find_key(args.key).public}
    if args.expiry:
        entry["expiry"] = args.expiry
    if args.admin:
        entry["admin"] = True
    return entry


def wait_for_request(
    client: AppClient, args: argparse.Namespace, pool_id: str, request_id: str | None
) -> dict:
    """Follow GET /api/pools/{poolId} until the request (by requestId) reaches a terminal phase."""
    display = None if args.json else ProgressDisplay()
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            try:
                view = client.pool(pool_id)
            except CliError as error:
                if error.code != NOT_FOUND:  # the status entry may not be written yet
                    raise
                view = {"phase": "accepted"}
            ours = request_id is None or view.get("requestId") == request_id
            if display:
                display.show(view if ours else {"phase": "accepted"})
            if ours and view.get("phase") in TERMINAL_PHASES:
                return view
            if time.monotonic() > deadline:
                raise CliError(
                    f"pool {pool_id} did not finish within {args.timeout:g} s (phase {view.get('phase')}); "
                    f"follow it with `batch-ssh status {pool_id}`",
                    UNREACHABLE,
                )
            time.sleep(POLL_INTERVAL)
    finally:
        if display:
            display.close()


def my_nodes(client: AppClient, pool_id: str, user: str) -> list[dict]:
    return sshfiles.node_order(client.connections(pool_id)["connections"], user)


def finish(client: AppClient, args: argparse.Namespace, pool_id: str, user: str, view: dict) -> int:
    """The end of request/grant/extend/rotate: the connection table (and the Include file if asked)."""
    nodes = my_nodes(client, pool_id, user)
    phase = view.get("phase")
    outcome = view.get("outcome") or {}
    error = outcome.get("error") if isinstance(outcome, dict) else None
    written = None
    if args.ssh_config and nodes:
        written = write_ssh_config(pool_id, user, nodes, sshfiles.identity_for(args.key))
    rows = connection_rows(pool_id, nodes)
    data = {
        "poolId": pool_id,
        "requestId": view.get("requestId"),
        "phase": phase,
        "warnings": view.get("warnings") or [],
        "errors": view.get("errors") or [],
        "error": error,
        "connections": [dict(zip(CONNECTION_HEADERS, row, strict=True)) for row in rows],
        "sshConfig": str(written) if written else None,
    }
    text = f"pool {pool_id}: {phase}"
    for warning in data["warnings"]:
        text += f"\nwarning: {warning.get('message', warning) if isinstance(warning, dict) else warning}"
    for problem in data["errors"]:
        text += f"\n  {problem.get('field')}: {problem.get('rule')}" if isinstance(problem, dict) else ""
    if error:
        text += f"\nerror: {error.get('message', error) if isinstance(error, dict) else error}"
    if nodes:
        text += "\n\n" + table(CONNECTION_HEADERS, rows)
        if written:
            text += f"\n\nwrote {written}: ssh {pool_id}-0"
        else:
            text += f"\n\nnext: batch-ssh ssh {pool_id} [NODE] -- COMMAND, or batch-ssh ssh-config {pool_id}"
    out(args, text, data)
    return OK if phase == "completed" else FAILED


def write_ssh_config(pool_id: str, user: str, nodes: list[dict], identity: Path | None) -> Path:
    path, _ = sshfiles.write_include(pool_id, sshfiles.render_include(pool_id, user, nodes, identity))
    return path


def started(client: AppClient, args: argparse.Namespace, pool_id: str, user: str, answer: dict) -> int:
    """After a 202: print it (--no-wait) or wait and finish with the connection table."""
    for warning in answer.get("warnings") or []:
        if args.no_wait and not args.json:
            note(f"warning: {warning.get('message', warning) if isinstance(warning, dict) else warning}")
    if args.no_wait:
        public = public_answer(answer)
        text = (
            f"accepted: pool {pool_id}, request {answer.get('requestId')} "
            f"({answer.get('result', 'accepted')}); "
            f"follow it with `batch-ssh status {pool_id}`"
        )
        out(args, text, public)
        return OK
    view = wait_for_request(client, args, pool_id, answer.get("requestId"))
    return finish(client, args, pool_id, user, view)


# ---- commands ---------------------------------------------------------------------------------------------


def cmd_configure(args: argparse.Namespace) -> int:
    path = config_path()
    current = read_config_file(path)
    url = args.url or os.environ.get("BATCH_SSH_URL") or current.get("url")
    if not url:
        raise CliError("pass --url (the app's base URL)", USAGE)
    if sys.stdin.isatty():
        key = getpass.getpass("function key (input hidden; Enter keeps the current one): ")
    else:
        key = sys.stdin.readline().strip()
    key = key or current.get("key", "")
    values = {"url": url.rstrip("/"), "key": key, "user": args.user or current.get("user", "")}
    if values["user"] and not USER_NAME.match(values["user"]):
        raise CliError(
            f"{values['user']!r} is not a Linux user name (lower-case letters, digits, _ or -)", USAGE
        )
    if args.check:
        AppClient(Settings(url=values["url"], key=values["key"], user=values["user"])).pools()
    write_config_file(path, values)
    out(args, f"wrote {path} (mode 0600)" + (": the key works" if args.check else ""), {"config": str(path)})
    return OK


def cmd_request(args: argparse.Namespace, client: AppClient, settings) -> int:
    body = read_json_file(args.file) if args.file else {}
    user = user_for_table(args, settings, body)
    if args.pool:
        body["poolId"] = args.pool
    if not body.get("poolId"):
        raise CliError("pass --pool (or a poolId in --file)", USAGE)
    if args.vm_size or "vmSize" not in body:
        body["vmSize"] = args.vm_size or "Standard_D2s_v3"
    if args.nodes is not None or args.spot is not None or "nodes" not in body:
        body["nodes"] = {"dedicated": 1 if args.nodes is None else args.nodes, "spot": args.spot or 0}
    if args.image or "image" not in body:
        os_name, _, version = (args.image or "ubuntu").partition(":")
        body["image"] = {"os": os_name, **({"version": version} if version else {})}
    ssh = body.setdefault("ssh", {})
    if args.source_prefix:
        ssh["allowedSourcePrefixes"] = args.source_prefix
    if args.ports:
        start, _, end = args.ports.partition("-")
        if not (start.isdigit() and end.isdigit()):
            raise CliError("--ports must be START-END, e.g. 40000-40099", USAGE)
        ssh["frontendPortRange"] = {"start": int(start), "end": int(end)}
    if not ssh:
        body.pop("ssh")
    if args.start_task:
        body["startTask"] = {"commandLine": args.start_task}
    if args.delete_after:
        body["deleteAfter"] = args.delete_after
    if args.request_id:
        body["requestId"] = args.request_id
    if "users" not in body or args.key or args.user:
        body["users"] = [user_entry(args, user)]
    pool_id = body["poolId"]
    answer = client.request_pool(body)
    return started(client, args, pool_id, user, answer)


def user_for_table(args: argparse.Namespace, settings, body: dict) -> str:
    """Whose connections to show: --user, else yours if the file names you, else the file's first user."""
    named = [u.get("name") for u in body.get("users") or [] if isinstance(u, dict)]
    if args.user or not named or settings.user in named:
        return user_of(args, settings)
    return str(named[0])


def _grant(args: argparse.Namespace, client: AppClient, settings) -> int:
    body = read_json_file(args.file) if getattr(args, "file", None) else {}
    body.pop("poolId", None)
    body.pop("kind", None)
    user = user_for_table(args, settings, body)
    if "users" not in body:
        body["users"] = [user_entry(args, user)]
    if getattr(args, "request_id", None):
        body["requestId"] = args.request_id
    answer = client.grant(args.pool, body)
    return started(client, args, args.pool, user, answer)


def cmd_grant(args: argparse.Namespace, client: AppClient, settings) -> int:
    return _grant(args, client, settings)


def cmd_extend(args: argparse.Namespace, client: AppClient, settings) -> int:
    """The same grant with a new expiry; refused when your key is not the one granted (that is `rotate`)."""
    args.file = None
    user = user_of(args, settings)
    granted = {u.get("name"): u for u in (client.pool(args.pool).get("pool") or {}).get("users") or []}
    if user not in granted:
        raise CliError(
            f"{user} has no access on pool {args.pool} to extend (`batch-ssh grant {args.pool}`)", NOT_FOUND
        )
    key = sshfiles.find_key(args.key)
    if granted[user].get("keyFingerprint") not in (None, sshfiles.fingerprint(key.public)):
        raise CliError(
            f"{key.public_path} is not the key {user} was granted on pool {args.pool} "
            f"({granted[user]['keyFingerprint']}); pass that one with --key, "
            "or use `batch-ssh rotate` to replace it",
            USAGE,
        )
    return _grant(args, client, settings)


def cmd_rotate(args: argparse.Namespace, client: AppClient, settings) -> int:
    args.file = None
    code = _grant(args, client, settings)
    user = user_of(args, settings)
    if code == OK and sshfiles.include_file(args.pool).exists():
        nodes = my_nodes(client, args.pool, user)
        path = write_ssh_config(args.pool, user, nodes, sshfiles.identity_for(args.key))
        if not args.json:
            note(f"rewrote {path} with the new key")
    return code


def cmd_revoke(args: argparse.Namespace, client: AppClient, settings) -> int:
    user = user_of(args, settings)
    try:
        status, answer = client.revoke(args.pool, user)
    except CliError as error:
        if error.code == NOT_FOUND:
            sshfiles.remove_include(args.pool)
        raise
    removed = sshfiles.remove_include(args.pool)
    result = answer.get("revoked") if isinstance(answer, dict) else None
    if status == 202 or result is None:
        text = (
            f"revoking {user} on pool {args.pool}: still running; `batch-ssh status {args.pool}` follows it"
        )
    else:
        text = (
            f"revoked {user} on pool {args.pool}: {result.get('deleted', 0)} node(s), "
            f"{result.get('recordsRevoked', 0)} record(s) revoked"
        )
        if result.get("failed"):
            text += f", failed on {result['failed']}"
    if removed:
        text += f"\nremoved {removed}"
    out(args, text, {"poolId": args.pool, "user": user, "status": status, "result": public_answer(answer),
                     "removedSshConfig": str(removed) if removed else None})  # fmt: skip
    return OK if not (result or {}).get("failed") else FAILED


def cmd_delete(args: argparse.Namespace, client: AppClient, settings) -> int:
    answer = client.delete_pool(args.pool)
    removed = sshfiles.remove_include(args.pool)
    text = f"deleting pool {args.pool}; `batch-ssh status {args.pool}` follows it"
    if removed:
        text += f"\nremoved {removed}"
    out(args, text, public_answer(answer))
    return OK


def cmd_status(args: argparse.Namespace, client: AppClient, settings) -> int:
    view = client.pool(args.pool)
    pool = view.get("pool") or {}
    lines = [f"pool {args.pool}: {progress_text(view)}"]
    if view.get("kind"):
        lines[0] += f"  (latest request: {view['kind']} {view.get('requestId')})"
    for warning in view.get("warnings") or []:
        lines.append(f"warning: {warning.get('message', warning) if isinstance(warning, dict) else warning}")
    outcome = view.get("outcome") or {}
    if isinstance(outcome, dict) and outcome.get("error"):
        error = outcome["error"]
        lines.append(f"error: {error.get('message', error) if isinstance(error, dict) else error}")
    if pool.get("managed"):
        made = "created by the app" if pool.get("createdByApp") else "access managed by the app"
        lines.append(f"{made}; state {pool.get('state')}; delete after {pool.get('deleteAfter') or '-'}")
    users = pool.get("users") or []
    if users:
        rows = [[u.get("name"), "yes" if u.get("admin") else "no", u.get("expiryTime"), u.get("activeNodes")]
                for u in users]  # fmt: skip
        lines += ["", table(["user", "admin", "expires", "nodes"], rows)]
    nodes = pool.get("nodes") or []
    if nodes:
        rows = [[n["nodeId"], n.get("nodeState"), n.get("ip"), n.get("port"), ",".join(n.get("users") or [])]
                for n in nodes]  # fmt: skip
        lines += ["", table(["node", "state", "ip", "port", "users"], rows)]
    out(args, "\n".join(lines), view)
    return OK


def cmd_list(args: argparse.Namespace, client: AppClient, settings) -> int:
    pools = client.pools().get("pools", [])
    rows = []
    for p in pools:
        counts = p.get("nodeCounts") or {}
        nodes = f"{counts.get('usable')}/{counts.get('total')}" if counts else "-"
        rows.append(
            [p["poolId"], "yes" if p.get("createdByApp") else "no", p.get("state"), p.get("phase"), nodes,
             ",".join(p.get("activeUsers") or []) or "-", p.get("deleteAfter") or "-"]
        )  # fmt: skip
    headers = ["pool", "created", "state", "phase", "nodes", "users", "delete after"]
    text = table(headers, rows) if rows else "the app manages no pools"
    out(args, text, {"pools": pools})
    return OK


def cmd_connections(args: argparse.Namespace, client: AppClient, settings) -> int:
    fmt = "json" if args.json else args.format
    answer = client.connections(args.pool, fmt)
    if fmt == "json":
        print(json.dumps(answer, indent=2, sort_keys=True))
    else:
        print(answer.rstrip("\n"))
    return OK


def cmd_mine(args: argparse.Namespace, client: AppClient, settings) -> int:
    user = user_of(args, settings)
    answer = client.user_access(user)
    rows = [
        [r["poolId"], r["nodeId"], r.get("ip"), r.get("port"), r.get("expiresAt")] for r in answer["access"]
    ]
    text = table(["pool", "node", "ip", "port", "expires"], rows) if rows else f"{user} has no active access"
    out(args, text, answer)
    return OK


def cmd_ssh_config(args: argparse.Namespace, client: AppClient, settings) -> int:
    user = user_of(args, settings)
    nodes = my_nodes(client, args.pool, user)
    if not nodes:
        raise CliError(f"{user} has no active access on pool {args.pool}", FAILED)
    identity = (
        Path(args.identity).expanduser().resolve() if args.identity else sshfiles.identity_for(args.key)
    )
    path, changed = sshfiles.write_include(
        args.pool, sshfiles.render_include(args.pool, user, nodes, identity)
    )
    aliases = [f"{args.pool}-{i}" for i in range(len(nodes))]
    text = f"wrote {path}: {', '.join(aliases)}"
    if changed:
        text += f"\nadded `{sshfiles.include_line()}` to {sshfiles.ssh_dir() / 'config'}"
    text += f"\nlog in: ssh {aliases[0]}"
    out(
        args,
        text,
        {"file": str(path), "aliases": dict(zip(aliases, (n["nodeId"] for n in nodes), strict=True))},
    )
    return OK


def cmd_ssh(args: argparse.Namespace, client: AppClient, settings) -> int:
    user = user_of(args, settings)
    nodes = my_nodes(client, args.pool, user)
    _, record = sshfiles.pick_node(nodes, args.pool, args.node)
    identity = (
        Path(args.identity).expanduser().resolve() if args.identity else sshfiles.identity_for(args.key)
    )
    argv = sshfiles.ssh_argv(record, user, identity, args.option or [], args.remote)
    try:
        return subprocess.call(argv)
    except FileNotFoundError:
        raise CliError("the ssh client is not installed (OpenSSH's `ssh`)", USAGE) from None


# ---- parser -----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output on stdout"
    )
    parser = argparse.ArgumentParser(
        prog="batch-ssh",
        description="SSH access to Azure Batch nodes through the Batch SSH access app.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--version", action="version", version=f"batch-ssh {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common])

    def access_flags(p: argparse.ArgumentParser, *, expiry_required: bool = False) -> None:
        p.add_argument("--user", help="user name on the nodes (default: BATCH_SSH_USER, config, login name)")
        p.add_argument("--key", help="your public key file (default: ~/.ssh/id_ed25519.pub, then id_rsa.pub)")
        p.add_argument("--expiry", required=expiry_required, help="ISO 8601 duration (PT8H) or time")
        p.add_argument("--admin", action="store_true", help="give the user admin (sudo) rights")

    def wait_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-wait", action="store_true", help="answer once the app accepted the request")
        p.add_argument("--timeout", type=float, default=1800, help="seconds to wait (default 1800)")
        p.add_argument("--ssh-config", action="store_true", help="also write the pool's SSH Include file")

    p = command("configure", "write the config file (mode 0600); the key is read from a prompt or stdin")
    p.add_argument("--url", help="the app's base URL")
    p.add_argument("--user", help="your user name on the nodes")
    p.add_argument(
        "--no-check", dest="check", action="store_false", help="do not try the key against the app"
    )
    p.set_defaults(handler=cmd_configure, needs_client=False)

    p = command("request", "request a pool with SSH access for you, wait, print the connections")
    p.add_argument("--pool", help="pool id")
    p.add_argument("--file", help="a pool request JSON file (flags override its fields; - for stdin)")
    p.add_argument("--nodes", type=int, help="dedicated nodes (default 1)")
    p.add_argument("--spot", type=int, help="spot nodes (default 0)")
    p.add_argument("--vm-size", help="VM size (default Standard_D2s_v3)")
    p.add_argument("--image", help="OS[:VERSION] of a verified image (default ubuntu)")
    p.add_argument("--source-prefix", action="append", help="address or CIDR allowed to SSH in (repeat)")
    p.add_argument("--ports", help="frontend port range START-END for SSH (default: the app's)")
    p.add_argument("--start-task", help="start task command line")
    p.add_argument("--delete-after", help="ISO 8601 duration or time after which the app deletes the pool")
    p.add_argument("--request-id", help="idempotency key (default: derived from the pool id)")
    access_flags(p)
    wait_flags(p)
    p.set_defaults(handler=cmd_request)

    p = command("grant", "grant SSH access on an existing pool (adds a user, or updates key/expiry/admin)")
    p.add_argument("pool")
    p.add_argument("--file", help='an access grant JSON file ({"users": [...]}; - for stdin)')
    p.add_argument("--request-id", help="idempotency key")
    access_flags(p)
    wait_flags(p)
    p.set_defaults(handler=cmd_grant)

    p = command("extend", "extend your access on a pool to a new expiry")
    p.add_argument("pool")
    access_flags(p, expiry_required=True)
    wait_flags(p)
    p.set_defaults(handler=cmd_extend)

    p = command("rotate", "replace your key on a pool's nodes with --key (rewrites the SSH Include file)")
    p.add_argument("pool")
    access_flags(p)
    wait_flags(p)
    p.set_defaults(handler=cmd_rotate)

    p = command("revoke", "take your access on a pool away and remove its SSH Include file")
    p.add_argument("pool")
    p.add_argument("--user", help="user name (default: yours)")
    p.set_defaults(handler=cmd_revoke)

    p = command("delete", "delete a pool the app created (its records become deleted)")
    p.add_argument("pool")
    p.set_defaults(handler=cmd_delete)

    p = command("status", "a pool as it is: the latest request's phase, users, nodes")
    p.add_argument("pool")
    p.set_defaults(handler=cmd_status)

    p = command("list", "every pool the app manages")
    p.set_defaults(handler=cmd_list)

    p = command("connections", "a pool's SSH connection records")
    p.add_argument("pool")
    p.add_argument("--format", choices=["table", "json", "ssh_config"], default="table")
    p.set_defaults(handler=cmd_connections)

    p = command("mine", "your active access across pools")
    p.add_argument("--user", help="user name (default: yours)")
    p.set_defaults(handler=cmd_mine)

    p = command("ssh-config", "write ~/.ssh/config.d/batch-ssh-POOL with aliases POOL-0, POOL-1, ...")
    p.add_argument("pool")
    p.add_argument("--user", help="user name (default: yours)")
    p.add_argument("--key", help="the public key you were granted with (its private key is the IdentityFile)")
    p.add_argument("--identity", help="private key file for IdentityFile (default: from --key)")
    p.set_defaults(handler=cmd_ssh_config)

    p = command("ssh", "log in to a node with the system ssh: batch-ssh ssh POOL [NODE] [-- COMMAND]")
    p.add_argument("pool")
    p.add_argument("node", nargs="?", help="node index (as in POOL-i), node id (default: 0)")
    p.add_argument("--user", help="user name (default: yours)")
    p.add_argument("--key", help="the public key you were granted with (its private key logs in)")
    p.add_argument("--identity", help="private key file (default: from --key)")
    p.add_argument("-o", "--option", action="append", help="an ssh -o option, e.g. -o ServerAliveInterval=30")
    p.set_defaults(handler=cmd_ssh)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    remote: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, remote = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if remote and args.handler is not cmd_ssh:
        parser.error("`-- COMMAND` is only for `batch-ssh ssh`")
    args.remote = remote
    try:
        if not getattr(args, "needs_client", True):
            return args.handler(args)
        settings = load_settings()
        return args.handler(args, AppClient(settings), settings)
    except CliError as error:
        if args.json:
            print(json.dumps(error.as_json(), indent=2))
        else:
            print(f"batch-ssh: {error.message}", file=sys.stderr)
            for line in error.details:
                print(f"  {line}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        if getattr(args, "pool", None):
            print(
                f"\nbatch-ssh: stopped; what the app started goes on (batch-ssh status {args.pool})",
                file=sys.stderr,
            )
        return 130
