#!/usr/bin/env bash
# Browser end-to-end test; filled in with the web client.
exit 0
