"""Bring committed results files up to the current schema (``pneumolib.schema``) without retraining.

Schema version 1 kept the layout the notebooks already wrote and added ``schema_version``; a file
without one is stamped and checked. A file that still fails the check is reported and left as it is.

    python scripts/migrate_results.py --profile cpu
"""

import argparse
import sys

from pneumolib import schema
from pneumolib.profiles import get_profile
from pneumolib.results import read_json, write_json


def migrate(profile_name: str) -> int:
    profile, failures = get_profile(profile_name), 0
    for name in schema.FILES:
        path = schema.results_path(profile, name)
        if not path.exists():
            print(f"{name:13s} absent")
            continue
        data = read_json(path)
        old = data.get("schema_version")
        if old is None:
            data = {"schema_version": 1, **data}
        try:
            schema.validate(name, data, path)
        except schema.SchemaError as err:
            failures += 1
            print(f"{name:13s} NOT migrated: {err}")
            continue
        if old is None:
            write_json(path, data)
        print(f"{name:13s} {'stamped version 1' if old is None else f'already version {old}'}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    return migrate(parser.parse_args(argv).profile)


if __name__ == "__main__":
    sys.exit(main())
