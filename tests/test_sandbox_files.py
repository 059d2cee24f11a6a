"""Model-written programs cannot read the user's files (issue 22).

Canary files, each holding a secret, are planted in the user's home, under /tmp, in the
reports root and in the project checkout. Hostile programs (Python and C++) try to read them
by path, through symlinks they make, through /proc, and by listing directories. Under either
mechanism that hides files (bubblewrap, or the sandbox's own namespaces) neither a secret
nor a canary's name may appear in what the sandbox returns, nor in anything a TTT run
writes or prints.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from harness.sandbox import isolation as iso_mod
from harness.sandbox.runner import Limits, call_python, run_program

CHECKOUT = Path(__file__).resolve().parents[1]
DIRS = ["/", "/root", "/home", "/tmp", "/run", "/etc", "/work", str(Path.home()),
        str(CHECKOUT), "/proc/1/root", "/proc/1/cwd/.."]


@pytest.fixture(params=["bwrap", "namespaces"])
def hiding(request, monkeypatch):
    """The sandbox forced to one mechanism (HARNESS_SANDBOX); skipped where it cannot hide."""
    if request.param == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    monkeypatch.setenv("HARNESS_SANDBOX", request.param)
    iso = iso_mod.isolation()
    if not iso.hide:
        pytest.skip(f"{request.param} cannot hide files on this OS (needs mount and PID "
                    f"namespaces: root, or unprivileged user namespaces): {iso.describe()}")
    assert iso.mechanism == request.param
    return request.param


@pytest.fixture()
def canaries(reports_in_tmp):
    """{place: path} of planted files; the secret is in each, the tag in each name."""
    tag = f"harness-canary-{uuid.uuid4().hex[:10]}"
    secret = f"SECRET-{uuid.uuid4().hex}"
    places = {"home": Path.home() / f".{tag}",
              "tmp": Path(tempfile.gettempdir()) / tag / "secret.txt",
              "reports": reports_in_tmp / tag / "secret.txt",
              "checkout": CHECKOUT / f".{tag}"}
    for path in places.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secret)
    yield tag, secret, places
    for path in places.values():
        path.unlink(missing_ok=True)
    shutil.rmtree(Path(tempfile.gettempdir()) / tag, ignore_errors=True)


def hostile_python(paths: list[str]) -> str:
    """Reads every path (directly, via its own symlink, via /proc/1/root, relatively), lists
    DIRS and each path's folder ("SEEN:" per entry), prints all it got to stdout and stderr
    and returns it; its `run()` raises it as the error message too."""
    return textwrap.dedent(f"""
        import os, sys
        got = []
        def grab(fn):
            try:
                got.append(str(fn()))
            except Exception as exc:
                got.append(type(exc).__name__)
        for i, p in enumerate({paths!r}):
            grab(lambda: open(p).read())
            grab(lambda: open("/proc/1/root" + p).read())
            grab(lambda: open(os.path.relpath(p)).read())
            link = f"link{{i}}"
            grab(lambda: os.symlink(p, link) or open(link).read())
        for d in {DIRS!r} + [os.path.dirname(p) for p in {paths!r}]:
            grab(lambda: " ".join("SEEN:" + name for name in os.listdir(d)))
        text = " | ".join(got)
        print(text)
        print(text, file=sys.stderr)

        def run(seed=0, budget_s=1.0):
            raise RuntimeError(text)

        def found(**kwargs):
            return got
    """)


def hostile_cpp(paths: list[str]) -> str:
    quoted = ", ".join(json.dumps(p) for p in paths)
    dirs = ", ".join(json.dumps(d) for d in DIRS)
    return textwrap.dedent("""
        #include <dirent.h>
        #include <unistd.h>
        #include <fstream>
        #include <iostream>
        #include <sstream>
        #include <string>
        int main() {
          const char* paths[] = {PATHS};
          const char* dirs[] = {DIRS};
          int i = 0;
          for (const char* p : paths) {
            std::string link = "link" + std::to_string(i++);
            symlink(p, link.c_str());
            for (std::string q : {std::string(p), std::string("/proc/1/root") + p, link}) {
              std::ifstream f(q);
              std::stringstream s;
              s << f.rdbuf();
              std::cout << (f.good() ? s.str() : "unreadable") << "\\n";
              std::cerr << (f.good() ? s.str() : "unreadable") << "\\n";
            }
          }
          for (const char* d : dirs) {
            if (DIR* h = opendir(d)) {
              while (dirent* e = readdir(h)) std::cout << "SEEN:" << e->d_name << " ";
              closedir(h);
            }
          }
          return 1;
        }
    """).replace("{PATHS}", "{" + quoted + "}").replace("{DIRS}", "{" + dirs + "}")


def assert_hidden(text: str, tag: str, secret: str) -> None:
    assert secret not in text
    assert not re.search(r"SEEN:\S*" + re.escape(tag), text)


def test_the_canaries_are_readable_without_the_sandbox(canaries):
    """The control: the hostile program does find every canary when run bare."""
    tag, secret, places = canaries
    namespace: dict = {}
    code = hostile_python([str(p) for p in places.values()])
    cwd = os.getcwd()
    try:
        os.chdir(tempfile.mkdtemp())
        exec(compile(code, "hostile", "exec"), namespace)  # noqa: S102 - our own test program
    finally:
        os.chdir(cwd)
    text = " | ".join(namespace["got"])
    assert text.count(secret) >= 3 * len(places)  # by its path, relative path and a link
    assert re.search(r"SEEN:\S*" + re.escape(tag), text)


def test_a_python_program_sees_no_canary(hiding, canaries):
    tag, secret, places = canaries
    source = hostile_python([str(p) for p in places.values()])
    result = run_program(source, limits=Limits(wall_s=60))
    assert result.status == "ok", result.reason
    called = call_python(source, "found", {}, Limits(wall_s=60))
    assert called.ok, called.reason
    for text in (result.stdout, result.stderr, result.reason, called.stdout, called.stderr,
                 json.dumps(called.value)):
        assert_hidden(text, tag, secret)
    seen = " ".join(called.value)
    assert "SEEN:usr" in seen and "SEEN:tmp" in seen  # it did list directories


def test_a_cpp_program_sees_no_canary(hiding, canaries):
    if shutil.which("g++") is None:
        pytest.skip("no g++ here")
    tag, secret, places = canaries
    result = run_program(hostile_cpp([str(p) for p in places.values()]), "cpp",
                         limits=Limits(wall_s=60))
    assert result.status == "error" and "unreadable" in result.stdout, result.reason
    for text in (result.stdout, result.stderr, result.reason):
        assert_hidden(text, tag, secret)
    assert "SEEN:usr" in result.stdout


def test_a_ttt_run_writes_and_prints_no_canary(hiding, canaries, tmp_path, tiny_policy,
                                               monkeypatch, capsys):
    """Every rollout of a real (toy, program-action) run is the hostile program: half raise
    what they found (the error message), half print it and return a valid line (the stdout
    tail, kept for the next prompt). Nothing the run writes or prints holds a secret."""
    from harness.base.config import make_config
    from harness.base.records import RunPaths
    from harness.loop import ttt
    from harness.loop.sampling import Rollout

    tag, secret, places = canaries
    code = hostile_python([str(p) for p in places.values()])
    valid = code.replace("raise RuntimeError(text)", "return 'the quick brown fox jumps'")

    def hostile_sample(policy, prompts, group_size, *args, **kwargs):
        assert all(secret not in p for p in prompts)  # nor in what the model is shown
        rollouts = []
        for g, prompt in enumerate(prompts):
            for k in range(group_size):
                text = f"```python\n{code if k % 2 else valid}\n```"
                ids = policy.tokenizer(text, add_special_tokens=False)["input_ids"][:64]
                prompt_ids = policy.tokenizer(prompt)["input_ids"][-64:]
                rollouts.append(Rollout(g, prompt_ids, ids, [-1.0] * len(ids), text, True, True))
        return rollouts

    monkeypatch.setattr(ttt, "sample", hostile_sample)
    cfg = make_config("smoke", env="toy", model="tiny", device="cpu", action="program",
                      steps=2, eval_timeout_s=30.0)
    ttt.run_ttt(cfg, RunPaths.run_folder(tmp_path), progress=False, policy=tiny_policy)
    rollouts = (tmp_path / "data" / "rollouts.csv").read_text()
    assert "RuntimeError: FileNotFoundError" in rollouts  # the programs ran, found nothing
    printed = capsys.readouterr()
    for text in (printed.out, printed.err):
        assert_hidden(text, tag, secret)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path not in places.values():  # (the reports root's canary)
            assert_hidden(path.read_bytes().decode("utf-8", "replace"), tag, secret)


def test_config_json_says_which_mechanism_ran(hiding, tmp_path, monkeypatch):
    from harness.base.config import make_config
    from harness.loop import ttt

    monkeypatch.setattr(ttt, "run_ttt", lambda *a, **k: None)
    ttt.discover(make_config("smoke", env="toy", model="tiny"), tmp_path)
    sandbox = json.loads((tmp_path / "config.json").read_text())["sandbox"]
    assert sandbox["files_hidden_by"] == hiding and sandbox["read_only"]


def test_one_line_says_when_files_cannot_be_hidden(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_SANDBOX", "none")
    monkeypatch.setattr(iso_mod, "_warned", [])
    iso_mod.warn_if_visible()
    iso_mod.warn_if_visible()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot hide your files" in err


def test_the_view_holds_only_system_and_python_paths():
    shown = [entry[1] for entry in iso_mod.view()]
    assert str(CHECKOUT) not in shown and str(Path.home()) not in shown
    assert not any(p == "/tmp" or p.startswith(("/tmp/", "/home/")) for p in shown
                   if not p.startswith(sys.prefix))
    assert any(sys.prefix.startswith(p) or p.startswith(sys.prefix) for p in shown)
