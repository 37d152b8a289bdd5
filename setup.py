"""
txgearman: a Gearman job server on Twisted, with a durable queue in Redis.
"""

import re
from pathlib import Path

from setuptools import setup

here = Path(__file__).parent
version = re.search(
    r'^__version__ = "([^"]+)"', (here / "txgearman" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="txgearman",
    version=version,
    description="A Gearman job server on Twisted, with a durable job queue in Redis",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    # twisted.plugins is a namespace package shared with Twisted: it must be
    # listed by name (find_packages() skips it) and must never get an
    # __init__.py of ours.
    packages=[
        "txgearman",
        "txgearman.client",
        "txgearman.importer",
        "txgearman.server",
        "txgearman.store",
        "txgearman.test",
        "txgearman.web",
        "twisted.plugins",
    ],
    package_data={
        "txgearman": ["py.typed"],
        "txgearman.web": ["dashboard/*.html", "dashboard/*.js", "dashboard/*.css"],
    },
    install_requires=[
        "twisted[tls]>=24.7",
        "zope.interface>=6",
        "txredisapi>=1.6",
        # txredisapi parses replies in C with it: replaying a large queue
        # is five times faster.
        "hiredis>=2",
        # The text exposition format of /metrics (--http), never written by hand.
        "prometheus_client>=0.20",
    ],
    entry_points={
        "console_scripts": ["txgearman-import = txgearman.importer.script:main"],
    },
    extras_require={
        "test": [
            "hypothesis",
            "treq",
            "gear",
        ],
        "dev": [
            "mypy",
            "mypy-zope",
            "ruff",
            "tox",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Distributed Computing",
    ],
)
