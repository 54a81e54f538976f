#!/usr/bin/perl
# Lab client with a firewall mark: one TCP connection from a socket carrying
# SO_MARK, as tailscaled marks its own sockets (0x80000), so the kernel routes it
# with the mark from the first lookup on. Node has no SO_MARK; perl-base's Socket
# (Essential in Debian) has what this needs.
#
# usage: mark-probe.pl HOST PORT MARK TIMEOUT_SECONDS   (IPv4 only)
# prints one JSON object like probe.mjs: {"ok":true,"saw":"192.168.50.2"} or
# {"ok":false,"error":"ENETUNREACH"} ("timeout" when nothing came back in time).
use strict;
use warnings;
use Socket qw(AF_INET SOCK_STREAM SOL_SOCKET inet_aton pack_sockaddr_in);
use POSIX qw(:errno_h);

my ($host, $port, $mark, $timeout) = @ARGV;
die "usage: mark-probe.pl HOST PORT MARK TIMEOUT_SECONDS\n" unless defined $timeout;
my $SO_MARK = 36;    # <asm-generic/socket.h>

my %names = (ENETUNREACH() => "ENETUNREACH", EHOSTUNREACH() => "EHOSTUNREACH", ECONNREFUSED() => "ECONNREFUSED", EPERM() => "EPERM");
sub finish {
  my ($json) = @_;
  print "$json\n";
  exit 0;
}
sub failed { finish(sprintf('{"ok":false,"error":"%s"}', $names{ 0 + $! } // "$!")) }

$SIG{ALRM} = sub { finish('{"ok":false,"error":"timeout"}') };
alarm $timeout;
socket(my $socket, AF_INET, SOCK_STREAM, 0) or failed();
setsockopt($socket, SOL_SOCKET, $SO_MARK, pack("L", $mark =~ /^0x/i ? hex $mark : $mark)) or failed();
connect($socket, pack_sockaddr_in($port, inet_aton($host))) or failed();
my $answer = <$socket> // "";
$answer =~ s/\s+$//;
finish(qq({"ok":true,"saw":"$answer"}));
