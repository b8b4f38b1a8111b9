build/common/ws.o: common/ws.c common/ws.h common/log.h
common/ws.h:
common/log.h:
