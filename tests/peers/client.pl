# A Perl (Gearman::Client) client for the system tests.
# Usage: perl client.pl PORT COMMAND ARGS...
#   bg FUNC UNIQUE DATA   -> prints the handle
#   fg FUNC DATA          -> prints the result
use strict;
use warnings;
use Gearman::Client;

my ($port, $command, @args) = @ARGV;
my $client = Gearman::Client->new(job_servers => ["127.0.0.1:$port"]);
if ($command eq "bg") {
    my ($func, $uniq, $data) = @args;
    my $handle = $client->dispatch_background($func, $data, {uniq => $uniq});
    die "no handle\n" unless defined $handle;
    print "$handle\n";
} elsif ($command eq "fg") {
    my ($func, $data) = @args;
    my $result = $client->do_task($func, $data, {timeout => 10});
    die "no result\n" unless defined $result;
    print ${$result}, "\n";
}
