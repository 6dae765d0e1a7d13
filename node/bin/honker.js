#!/usr/bin/env node
'use strict';
// `npx honker <command>`: the operator's command (queues, jobs, job, dead,
// requeue, purge, cancel, pause, resume, schedules, streams, tail, events,
// stats), the same code as the `honker` binary, run in this process by the
// native addon. It blocks this process until the command ends; a following
// command (tail, events, stats --watch) ends on Ctrl-C.
const { native } = require('../dist/native.js');

process.exitCode = native.runCli(['honker', ...process.argv.slice(2)]);
