#!/bin/sh
# install-litert.sh PIP
# After `pip install 'imgcls[litert]'`: the three LiteRT converter packages whose pins
# (typing-extensions<4.13) conflict with pydantic 2.14, installed without those pins. The
# conversion and its parity check run with typing-extensions 4.16 (tests/deploy/exporting).
PIP=${1:-pip}
exec $PIP install --quiet --no-deps litert-torch==0.10.0 litert-converter==0.5.0 xdsl==0.28.0
