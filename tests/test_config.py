"""Campaign files: every shipped one validates; bad ones fail with one line naming the key."""

from pathlib import Path

import pytest

from engine.config import dump_toml, load_config, parse_config
from engine.errors import UserError

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "campaigns").rglob("*.toml")), ids=lambda p: p.name)
def test_shipped_campaigns_validate(path):
    cfg, text = load_config(path)
    assert cfg.name
    assert parse_config(text) == cfg


@pytest.mark.parametrize(
    "text, expected",
    [
        ('name = "x"\nfoo = 1', "unknown key 'foo'"),
        ('name = "x"\n[sampling]\ntemprature = 0.5', "unknown key 'sampling.temprature'"),
        ('name = "x"\n[sampling', "broken TOML"),
        ('name = "x"\n[sampling]\nn = 0', "sampling.n = 0 is invalid"),
        ('name = "x"\n[model]\nprompt_style = "poem"', "model.prompt_style = 'poem' is invalid"),
        ("rounds = 2", "missing key 'name'"),
        ('name = "x"\n[collapse]\non_collapse = "panic"', "collapse.on_collapse"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(text, expected):
    with pytest.raises(UserError) as err:
        parse_config(text, "c.toml")
    msg = str(err.value)
    assert expected in msg and "\n" not in msg and msg.startswith("c.toml")


def test_overrides_apply_and_validate(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('name = "x"\n[sampling]\nn = 8\n')
    cfg, text = load_config(path, {"sampling.n": 3, "rounds": 1, "model.spec": "some/model"})
    assert (cfg.sampling.n, cfg.rounds, cfg.model.spec) == (3, 1, "some/model")
    assert parse_config(text) == cfg
    with pytest.raises(UserError, match="sampling.n"):
        load_config(path, {"sampling.n": -1})


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="campaign file not found"):
        load_config(tmp_path / "nope.toml")


def test_dump_roundtrip_defaults():
    cfg = parse_config('name = "a \\"quoted\\" name"')
    assert parse_config(dump_toml(cfg)) == cfg
