# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""aws_gate: an HTTP layer in front of moto server that authorises role-session requests as AWS does.

Development tool (like ra_local), not part of the built collection. See docs/aws-gate.md.
``python -m aws_gate --host 127.0.0.1 --port 0 --upstream http://127.0.0.1:MOTO_PORT``
"""
