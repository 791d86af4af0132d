import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { RestartPolicy } from "../src/core/restarts";

const MINUTE = 60_000;

describe("RestartPolicy", () => {
  test("restarts 4 crashes in 3 minutes, then gives up", () => {
    const policy = new RestartPolicy();
    assert.deepEqual([0, 10, 20, 30, 40].map((s) => policy.crashed(s * 1000)), [true, true, true, true, false]);
    assert.equal(policy.crashed(50_000), false);
  });

  test("crashes older than 3 minutes no longer count", () => {
    const policy = new RestartPolicy();
    for (const time of [0, 1, 2, 3]) {
      assert.equal(policy.crashed(time * 1000), true);
    }
    assert.equal(policy.crashed(3 * MINUTE - 1), false);
    assert.equal(policy.crashed(3 * MINUTE + 1000), true); // the crashes at 0 and 1 s have expired
  });

  test("a restart by the user starts the count afresh", () => {
    const policy = new RestartPolicy();
    for (const time of [0, 1, 2, 3]) {
      policy.crashed(time * 1000);
    }
    assert.equal(policy.crashed(5000), false); // given up
    policy.reset(); // Zi: Restart Server
    assert.deepEqual([6, 7, 8, 9, 10].map((s) => policy.crashed(s * 1000)), [true, true, true, true, false]);
  });

  test("a user restart after 3 crashes: the next crash is the first again", () => {
    const policy = new RestartPolicy(4, 3 * MINUTE);
    for (const time of [0, 1, 2]) {
      policy.crashed(time * 1000);
    }
    policy.reset();
    for (const time of [10, 11, 12, 13]) {
      assert.equal(policy.crashed(time * 1000), true, `crash at ${time} s`);
    }
  });
});
