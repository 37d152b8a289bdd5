# A Perl (Gearman::Worker) worker for the system tests: upper-cases
# workloads of FUNC, and exits after COUNT jobs.
# Usage: perl worker.pl PORT FUNC COUNT
use strict;
use warnings;
use Gearman::Worker;

my ($port, $func, $count) = @ARGV;
my $worker = Gearman::Worker->new(job_servers => ["127.0.0.1:$port"]);
$worker->register_function($func => sub { uc $_[0]->arg });
my $done = 0;
$worker->work(
    on_complete => sub { $done++ },
    stop_if => sub { $done >= $count },
);
