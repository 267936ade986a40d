#!/usr/bin/perl
# Measures one init program (the supervisor or tini) running a child, and prints one "metric value" line per
# measurement (medians over RUNS). Used by bench/supervisor.sh, which prints the table.
#
#   supervisor-measure.pl RUNS INIT-COMMAND... --
#
# INIT-COMMAND ends with the `--` after which the init takes its child's command line.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Select;
use POSIX qw(mkfifo :sys_wait_h);
use Time::HiRes qw(time);

my $runs = shift or die "usage: supervisor-measure.pl RUNS INIT... --\n";
my @init = @ARGV;
die "the init command must end with --\n" unless @init && $init[-1] eq '--';

my $dir = tempdir('supervisor-bench-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $fifo = "$dir/events";
my $go = "$dir/go";
mkfifo($fifo, 0600) or die "mkfifo: $!\n";
mkfifo($go, 0600) or die "mkfifo: $!\n";
# Read-write opens never block and never see end-of-file: children may open and close them at will.
open(my $events, '+<', $fifo) or die "$fifo: $!\n";
open(my $gate, '+<', $go) or die "$go: $!\n";
$gate->autoflush(1);
my $select = IO::Select->new($events);

sub median {
    my @sorted = sort { $a <=> $b } @_;
    my $n = @sorted;
    return $n % 2 ? $sorted[$n / 2] : ($sorted[$n / 2 - 1] + $sorted[$n / 2]) / 2;
}

# Starts INIT with CHILD...; the init's own output is discarded.
sub start {
    my @child = @_;
    my $pid = fork() // die "fork: $!\n";
    if ($pid == 0) {
        open(STDOUT, '>', '/dev/null');
        open(STDERR, '>', '/dev/null');
        exec(@init, @child) or die "exec $init[0]: $!\n";
    }
    return $pid;
}

# The next line a child wrote to the events FIFO (dies after 20 s).
sub event {
    $select->can_read(20) or die "no event from the child within 20 s\n";
    my $line = '';
    while ($line !~ /\n\z/) {
        sysread($events, my $byte, 1) or die "reading events: $!\n";
        $line .= $byte;
    }
    chomp $line;
    return $line;
}

sub stop {
    my ($pid) = @_;
    kill('TERM', $pid);
    waitpid($pid, 0);
}

sub rss_kib {
    my ($pid) = @_;
    open(my $fh, '<', "/proc/$pid/status") or return 0;
    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+) kB/;
    }
    return 0;
}

# Waits (bounded) until a process named NAME runs below PID.
sub wait_descendant {
    my ($pid, $name) = @_;
    my $deadline = time + 20;
    while (time < $deadline) {
        my %parent;
        my @sleepers;
        for my $stat (glob('/proc/[0-9]*/stat')) {
            open(my $fh, '<', $stat) or next;
            my $line = <$fh> // next;
            $line =~ /^(\d+) \((.*)\) \S+ (\d+)/ or next;
            $parent{$1} = $3;
            push @sleepers, $1 if $2 eq $name;
        }
        for my $p (@sleepers) {
            for (my $up = $parent{$p}; $up && $up > 1; $up = $parent{$up}) {
                return if $up == $pid;
            }
        }
        select(undef, undef, undef, 0.005);
    }
    die "no $name below $pid after 20 s\n";
}

my (@startup, @rss, @forward, @sigint, @exit);

# Exec to child started, and the init's memory with the child running.
for my $run (1 .. $runs) {
    my $t0 = time;
    my $pid = start('sh', '-c', "echo started > $fifo; exec sleep 1000");
    event() eq 'started' or die "unexpected event\n";
    push @startup, (time - $t0) * 1000;
    if ($run <= 5) {
        # Let the background work settle (the supervisor's health check connects to PostgreSQL).
        select(undef, undef, undef, 1.0);
        push @rss, rss_kib($pid) / 1024;
    }
    stop($pid);
}

# Signal forwarding latency: kill(SIGUSR1) on the init to the child's handler.
{
    my $child = q{
        my $out = shift;
        sub say_it { open(my $f, '>', $out) or die; print $f "$_[0]\n"; close $f }
        $SIG{USR1} = sub { say_it('usr1') };
        say_it('ready');
        select(undef, undef, undef, 0.1) for 1 .. 1200;
    };
    my $pid = start('perl', '-e', $child, $fifo);
    event() eq 'ready' or die "unexpected event\n";
    for (1 .. $runs) {
        my $t0 = time;
        kill('USR1', $pid);
        event() eq 'usr1' or die "unexpected event\n";
        push @forward, (time - $t0) * 1000;
    }
    stop($pid);
}

# SIGINT to `bash -c 'sleep 1000; true'`: only the group delivery ends it.
for (1 .. $runs) {
    my $pid = start('bash', '-c', 'sleep 1000; true');
    wait_descendant($pid, 'sleep');
    my $t0 = time;
    kill('INT', $pid);
    waitpid($pid, 0);
    push @sigint, (time - $t0) * 1000;
}

# Child exit to init exit.
for (1 .. $runs) {
    my $child = q{
        use Time::HiRes qw(time);
        my ($go, $out) = @ARGV;
        open(my $g, '<', $go) or die;
        { open(my $f, '>', $out) or die; print $f "ready\n"; close $f }
        <$g>;
        open(my $f, '>', $out) or die;
        printf $f "%.6f\n", time;
        close $f;
        exit 0;
    };
    my $pid = start('perl', '-e', $child, $go, $fifo);
    event() eq 'ready' or die "unexpected event\n";
    print $gate "go\n";
    my $exited = event();
    waitpid($pid, 0);
    push @exit, (time - $exited) * 1000;
}

printf "rss_mib %.2f\n", median(@rss);
printf "startup_ms %.2f\n", median(@startup);
printf "forward_ms %.3f\n", median(@forward);
printf "sigint_ms %.2f\n", median(@sigint);
printf "exit_ms %.2f\n", median(@exit);
