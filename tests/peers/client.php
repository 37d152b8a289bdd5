<?php
// A PHP (pecl gearman, libgearman) client for the system tests.
// Usage: php client.php PORT COMMAND ARGS...; prints one JSON value.
//   fg FUNC DATA_HEX                      -> {"result": HEX, "rc": N}
//   bg PRIORITY FUNC UNIQUE DATA          -> {"handle": H, "rc": N}   PRIORITY = high|normal|low
//   status HANDLE                         -> [known, running, num, den]
$client = new GearmanClient();
$client->addServer("127.0.0.1", (int)$argv[1]);
$client->setTimeout(10000);
switch ($argv[2]) {
case "fg":
    $result = $client->doNormal($argv[3], hex2bin($argv[4]));
    echo json_encode(["result" => bin2hex($result), "rc" => $client->returnCode()]), "\n";
    break;
case "bg":
    $method = ["high" => "doHighBackground", "normal" => "doBackground",
               "low" => "doLowBackground"][$argv[3]];
    $handle = $client->$method($argv[4], $argv[6], $argv[5]);
    echo json_encode(["handle" => $handle, "rc" => $client->returnCode()]), "\n";
    break;
case "status":
    echo json_encode($client->jobStatus($argv[3])), "\n";
    break;
}
