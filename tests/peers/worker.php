<?php
// A PHP (pecl gearman, libgearman) worker for the system tests.
// Usage: php worker.php PORT FUNC COUNT MODE
//   MODE reverse: returns the reversed workload
//   MODE log: prints each workload on its own line, returns "ok"
//   MODE fail: sends WORK_FAIL
$worker = new GearmanWorker();
$worker->addServer("127.0.0.1", (int)$argv[1]);
$mode = $argv[4];
$worker->addFunction($argv[2], function ($job) use ($mode) {
    if ($mode === "reverse") {
        return strrev($job->workload());
    }
    if ($mode === "fail") {
        $job->sendFail();
        return null;
    }
    echo $job->workload(), "\n";
    fflush(STDOUT);
    return "ok";
});
$count = (int)$argv[3];
while ($count-- > 0) {
    if (!$worker->work()) {
        fwrite(STDERR, "work() failed: " . $worker->error() . "\n");
        exit(1);
    }
}
